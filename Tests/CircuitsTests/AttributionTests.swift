import Circuits
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// EAP, EAP-IG, ACDC and node patching against finite differences, definitions and a planted circuit.
final class AttributionTests: XCTestCase {
    /// EAP's score of an edge is ∂M/∂α_e at 0: compare with a central difference of the patched metric.
    func testEAPEqualsFiniteDifferenceOfPatchedMetric() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            for metric in [Metric.logitDiff, .probDiff, .logprob] {
                let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric)
                let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
                let g = experiment.graph
                let edges = [0, 3, 11, 40, 77, g.edgeCount - 1, g.edgeCount - 5, g.edgeCount - 12] + Selection.topN(3).select(scores, graph: g)
                for e in edges {
                    /// Central difference with step h.
                    func derivative(_ h: Float) -> Double {
                        var mask = EdgeMask(graph: g)
                        mask[e] = h
                        let plus = experiment.evaluate(mask)
                        mask[e] = -h
                        return (plus - experiment.evaluate(mask)) / (2 * Double(h))
                    }
                    // Richardson extrapolation cancels the h² error term of the central difference.
                    let numeric = (4 * derivative(0.01) - derivative(0.02)) / 3
                    XCTAssertEqual(Double(scores[e]), numeric, accuracy: 2e-4 + 2e-3 * abs(numeric),
                                   "\(name) \(metric.rawValue) \(g.edge(e).name)")
                }
            }
        }
    }

    func testEAPDoesNotDependOnChunking() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let whole = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 8)
        let single = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 1)
        XCTAssertLessThanOrEqual(maxAbsDifference(whole, single), 1e-5 * (whole.map { abs($0) }.max() ?? 1))
        let ig = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .kl, integratedGradientSteps: 3, chunkSize: 8)
        let igSingle = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .kl, integratedGradientSteps: 3, chunkSize: 2)
        XCTAssertLessThanOrEqual(maxAbsDifference(ig, igSingle), 1e-5 * (ig.map { abs($0) }.max() ?? 1))
    }

    /// EAP-IG with m steps is the mean of EAP-style contractions at the interpolated inputs, written out here
    /// with the backward pass and the reference's sender outputs.
    func testEAPIGMatchesItsDefinition() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let steps = 3
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: steps)
        let g = CircuitGraph(config: model.config)
        let clean = try model.forward(pairs.clean, captureSenders: true), corrupt = try model.forward(pairs.corrupt, captureSenders: true)
        let plane = clean.layout.rows * model.config.dModel
        var expected = [Double](repeating: 0, count: g.edgeCount)
        let targets = MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect)
        for k in 0..<steps {
            let embedding = try model.interpolatedEmbedding(clean: pairs.clean, corrupt: pairs.corrupt, t: Float(k) / Float(steps))
            let pass = try model.forward(pairs.clean, keepActivations: true, inputEmbedding: embedding.pointer)
            let dLogits = FloatBuffer(count: pass.logits.count)
            _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: model.config.vocabularySize, targets: targets, gradient: dLogits.pointer)
            for (receiver, gradient) in model.receiverGradients(pass, dLogits: dLogits.pointer).gradients {
                let r = g.index(of: receiver)
                for s in 0..<g.upstreamCount(receiverAt: r) {
                    var sum = 0.0
                    for j in 0..<plane {
                        let diff = Double(corrupt.senders![s * plane + j]) - Double(clean.senders![s * plane + j])
                        sum += diff * Double(gradient[j])
                    }
                    expected[g.edgeOffsets[r] + s] += sum / Double(steps)
                }
            }
        }
        let scale = expected.map { abs($0) }.max()!
        for e in 0..<g.edgeCount { XCTAssertEqual(Double(scores[e]), expected[e], accuracy: 1e-5 * scale, g.edge(e).name) }
    }

    /// A GPT-2-style model built by hand: head a0.h0 copies the first token to the logits; every other
    /// head and every MLP has a zero output projection, so it cannot matter. The answer is the first token.
    static func plantedModel() -> TransformerModel {
        let vocab = 8, positions = 8, d = 32, heads = 4, dh = 8
        let c = TransformerConfig(
            architecture: "gpt2", vocabularySize: vocab, contextLength: positions, dModel: d, layers: 2, heads: heads,
            kvHeads: heads, headDim: dh, dMLP: 16, norm: .layerNorm, normEps: 1e-5, positions: .learned, mlp: .gelu,
            tiedEmbeddings: true)
        var rng = SeededRandom(seed: 11)
        func zeros(_ n: Int) -> FloatBuffer { FloatBuffer(count: n) }
        func ones(_ n: Int) -> FloatBuffer { FloatBuffer([Float](repeating: 1, count: n)) }
        func noise(_ n: Int) -> FloatBuffer { RandomModel.buffer(n, &rng, spread: 0.5) }
        // Token i is one-hot in dimension i, position p one-hot in dimension vocab + p.
        let wte = zeros(vocab * d), wpe = zeros(positions * d)
        for i in 0..<vocab { wte[i * d + i] = 1 }
        for p in 0..<positions { wpe[p * d + vocab + p] = 1 }
        var blocks: [BlockWeights] = []
        for l in 0..<2 {
            let wq = noise(heads * dh * d), bq = noise(heads * dh), wk = noise(heads * dh * d), wv = noise(heads * dh * d)
            let wo = zeros(d * heads * dh)
            if l == 0 {
                // Head 0: a constant query (bias only) that matches the key of position 0; values copy the
                // token dimensions; the output writes them back, scaled, into the token dimensions.
                for j in 0..<(dh * d) { wq[j] = 0 }
                for j in 0..<dh { bq[j] = 4 }
                for j in 0..<(dh * d) { wk[j] = 0 }
                for j in 0..<dh { wk[j * d + vocab] = 4 }
                for j in 0..<(dh * d) { wv[j] = 0 }
                for i in 0..<dh { wv[i * d + i] = 1 }
                for i in 0..<dh { wo[i * heads * dh + i] = 8 }
            }
            blocks.append(BlockWeights(
                norm1Weight: ones(d), norm1Bias: zeros(d), wq: wq, bq: bq, wk: wk, bk: zeros(heads * dh), wv: wv,
                bv: zeros(heads * dh), wo: wo, bo: zeros(d), norm2Weight: ones(d), norm2Bias: zeros(d),
                wUp: noise(16 * d), bUp: noise(16), wGate: nil, wDown: zeros(d * 16), bDown: zeros(d)))
        }
        return TransformerModel(config: c, tokenEmbedding: wte, positionEmbedding: wpe, blocks: blocks,
                                finalNormWeight: ones(d), finalNormBias: zeros(d), unembedding: wte, tokenizer: nil,
                                source: "planted")
    }

    /// Pairs whose answer is the first token: clean starts with token a, corrupt with token b.
    static func plantedPairs() -> PairBatch {
        let firsts = [(1, 2), (3, 5), (6, 0), (2, 7), (4, 1)]
        let middles = [[5, 6, 7, 3], [0, 2, 4], [7, 1, 3, 2, 5], [6, 6], [0, 3, 7]]
        return PairBatch(clean: zip(firsts, middles).map { [$0.0] + $1 }, corrupt: zip(firsts, middles).map { [$0.1] + $1 },
                         correct: firsts.map { [$0.0] }, incorrect: firsts.map { [$0.1] })
    }

    func testPlantedModelActuallyCopiesTheFirstToken() throws {
        let model = Self.plantedModel(), pairs = Self.plantedPairs()
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        XCTAssertGreaterThan(experiment.cleanMetric, 1, "the copy head should make the first token win")
        XCTAssertLessThan(experiment.corruptMetric, -1)
    }

    func testACDCAndEAPIGRecoverThePlantedCircuit() throws {
        let model = Self.plantedModel(), pairs = Self.plantedPairs()
        let g = CircuitGraph(config: model.config)
        let planted = Set([Edge(.input, .head(layer: 0, head: 0, port: .v)), Edge(.head(layer: 0, head: 0), .logits)].map { g.index(of: $0)! })

        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        let acdc = try ACDC(experiment, tau: 0.05)
        let kept = Set(g.pruned(acdc.run()))
        XCTAssertEqual(kept, planted, "ACDC kept \(kept.map { g.edge($0).name }.sorted())")
        XCTAssertEqual(experiment.evaluate(circuit: Array(kept)).faithfulness, 1, accuracy: 0.05)

        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: 5)
        XCTAssertEqual(Set(Selection.topN(2).select(scores, graph: g)), planted,
                       "EAP-IG top edges: \(Selection.topN(5).select(scores, graph: g).map { g.edge($0).name })")
        // Heads with zero output projections and the zero MLPs cannot matter.
        for e in 0..<g.edgeCount {
            if case .head(_, let h) = g.edge(e).sender, h != 0 { XCTAssertEqual(scores[e], 0, accuracy: 1e-6) }
            if case .mlp = g.edge(e).sender { XCTAssertEqual(scores[e], 0, accuracy: 1e-6) }
        }
    }

    func testNodePatchingFindsTheCopyHead() throws {
        let experiment = try Experiment(model: Self.plantedModel(), pairs: Self.plantedPairs(), metric: .logitDiff)
        let g = experiment.graph
        let scores = Array(zip(g.senders, NodePatching.scores(experiment)).dropFirst())  // heads and MLPs
        let strongest = scores.max { abs($0.1) < abs($1.1) }!
        XCTAssertEqual(strongest.0, .head(layer: 0, head: 0))
        XCTAssertLessThan(strongest.1, -1)
        for (node, score) in scores where node != .head(layer: 0, head: 0) { XCTAssertEqual(score, 0, accuracy: 1e-5, node.name) }
    }

    /// Speculative batches must not change what ACDC decides.
    func testBatchedACDCEqualsOneEdgeAtATime() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        let single = try ACDC(experiment, tau: 0.01, maxBatch: 1)
        let keptSingle = single.run()
        let batched = try ACDC(experiment, tau: 0.01, maxBatch: 8)
        let keptBatched = batched.run()
        XCTAssertEqual(keptBatched, keptSingle)
        XCTAssertEqual(batched.state.removed, single.state.removed)
        XCTAssertGreaterThan(keptSingle.count, 0, "τ should keep some edges for the comparison to mean something")
        XCTAssertGreaterThan(single.state.removed.count, 0)
    }

    /// The pruned circuit ACDC returns reproduces the metric it tracked while removing edges: dropped
    /// and pruned edges change nothing, so the circuit's KL is the drift ACDC accumulated.
    func testACDCCircuitReproducesTheTrackedMetric() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        let acdc = try ACDC(experiment, tau: 0.01)
        let circuit = experiment.graph.pruned(acdc.run())
        XCTAssertGreaterThan(acdc.state.removed.count, 0)
        XCTAssertGreaterThan(acdc.state.current, 0, "removals should move the KL away from the clean run's 0")
        XCTAssertEqual(experiment.evaluate(circuit: circuit).metric, acdc.state.current, accuracy: 1e-4 * max(1, acdc.state.current))
    }

    /// Compared with the clean model, τ bounds the whole circuit's distance from it (KL and a task
    /// metric); compared with the current graph, the drift adds up past τ. States saved before the
    /// reference existed resume as `current`.
    func testACDCWithTheCleanReferenceKeepsTheCircuitWithinTau() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        for metric in [Metric.kl, .logitDiff] {
            let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
            let tau = metric == .kl ? 0.05 : 0.2 * abs(experiment.cleanMetric - experiment.corruptMetric)
            let acdc = try ACDC(experiment, tau: tau, reference: .clean)
            let circuit = experiment.graph.pruned(acdc.run())
            XCTAssertGreaterThan(acdc.state.removed.count, 0, "\(metric)")
            let value = experiment.evaluate(circuit: circuit).metric
            XCTAssertLessThan(metric == .kl ? value : abs(value - experiment.cleanMetric), tau, "\(metric)")
            let published = try ACDC(experiment, tau: tau, reference: .current)
            let drift = experiment.evaluate(circuit: experiment.graph.pruned(published.run())).metric
            XCTAssertGreaterThan(metric == .kl ? drift : abs(drift - experiment.cleanMetric), tau,
                                 "\(metric): on this fixture the published comparison drifts past τ, which is what the clean reference fixes")
        }
        var saved = try JSONSerialization.jsonObject(with: JSONEncoder().encode(
            try ACDC(try Experiment(model: model, pairs: pairs, metric: .kl), tau: 0.05, reference: .clean).state)) as! [String: Any]
        XCTAssertEqual(saved["reference"] as? String, "clean")
        saved["reference"] = nil
        XCTAssertEqual(try JSONDecoder().decode(ACDC.State.self, from: JSONSerialization.data(withJSONObject: saved)).reference, .current)
    }

    /// Grouped trials find the planted circuit too, in fewer passes than one edge at a time: every
    /// receiver off the circuit goes in one pass.
    func testGroupedACDCRecoversThePlantedCircuitInFewerPasses() throws {
        let model = Self.plantedModel(), pairs = Self.plantedPairs()
        let g = CircuitGraph(config: model.config)
        let planted = Set([Edge(.input, .head(layer: 0, head: 0, port: .v)), Edge(.head(layer: 0, head: 0), .logits)].map { g.index(of: $0)! })
        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        let order = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: 5)
        let grouped = try ACDC(experiment, tau: 0.05, trials: .grouped, order: order)
        let kept = Set(g.pruned(grouped.run()))
        XCTAssertEqual(kept, planted, "grouped ACDC kept \(kept.map { g.edge($0).name }.sorted())")
        let serial = try ACDC(experiment, tau: 0.05)
        _ = serial.run()
        XCTAssertEqual(grouped.state.trials, .grouped)
        XCTAssertGreaterThanOrEqual(serial.state.evaluations, serial.state.edgesTried, "serial trials: a pass per edge tried, and discarded speculation")
        XCTAssertLessThan(grouped.state.evaluations, serial.state.evaluations,
                          "grouped \(grouped.state.evaluations) passes, serial \(serial.state.evaluations)")
        for e in planted { XCTAssertNotNil(grouped.state.keptEffects[e], "a kept edge carries the change it caused") }
    }

    /// With the clean reference every accepted group leaves the graph within τ of the model, so the
    /// circuit grouped and attributed trials return is within τ (KL and a task metric); its tracked
    /// metric is the circuit's.
    func testGroupedAndAttributedACDCWithTheCleanReferenceKeepTheCircuitWithinTau() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        for metric in [Metric.kl, .logitDiff] {
            let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
            let order = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric, integratedGradientSteps: 5)
            let tau = metric == .kl ? 0.05 : 0.2 * abs(experiment.cleanMetric - experiment.corruptMetric)
            for acdc in [try ACDC(experiment, tau: tau, reference: .clean, trials: .grouped, order: order),
                         try ACDC(experiment, tau: tau, reference: .clean, trials: .attributed)] {
                let label = "\(metric) \(acdc.state.trials)"
                let circuit = experiment.graph.pruned(acdc.run())
                XCTAssertGreaterThan(acdc.state.removed.count, 0, label)
                XCTAssertGreaterThan(acdc.state.keptEffects.count, 0, "\(label): τ should keep some edges")
                let value = experiment.evaluate(circuit: circuit).metric
                XCTAssertEqual(value, acdc.state.current, accuracy: 1e-4 * max(1, abs(value)), label)
                XCTAssertLessThan(metric == .kl ? value : abs(value - experiment.cleanMetric), tau, label)
                XCTAssertEqual(acdc.state.edgesTried, acdc.state.removed.count + acdc.state.keptEffects.count, "\(label): every tried edge decided once")
            }
        }
    }

    /// Attributed trials keep the planted circuit, take one gradient per layer they visit, and need
    /// fewer passes than serial trials.
    func testAttributedACDCKeepsThePlantedCircuitInFewerPasses() throws {
        let model = Self.plantedModel(), pairs = Self.plantedPairs()
        let g = CircuitGraph(config: model.config)
        let planted = Set([Edge(.input, .head(layer: 0, head: 0, port: .v)), Edge(.head(layer: 0, head: 0), .logits)].map { g.index(of: $0)! })
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let tau = 0.1 * abs(experiment.cleanMetric - experiment.corruptMetric)
        let attributed = try ACDC(experiment, tau: tau, reference: .clean, trials: .attributed)
        let kept = Set(g.pruned(attributed.run()))
        XCTAssertTrue(planted.isSubset(of: kept), "attributed ACDC kept \(kept.map { g.edge($0).name }.sorted())")
        XCTAssertGreaterThanOrEqual(experiment.evaluate(circuit: Array(kept)).faithfulness, 0.9)
        XCTAssertEqual(attributed.state.trials, .attributed)
        XCTAssertTrue((1...(g.layers + 1)).contains(attributed.state.gradients), "\(attributed.state.gradients) gradients")
        let serial = try ACDC(experiment, tau: tau, reference: .clean)
        _ = serial.run()
        XCTAssertLessThan(attributed.state.evaluations, serial.state.evaluations,
                          "attributed \(attributed.state.evaluations) passes, serial \(serial.state.evaluations)")
    }

    /// Nodes first keeps the planted circuit with serial and attributed trials, removes nodes off it
    /// whole (their receivers are then skipped) and decides every edge once; a run resumed in the middle of the nodes ends where the uninterrupted run ends, and its
    /// state is refused by a run without nodes first.
    func testACDCWithNodesFirstKeepsThePlantedCircuitAndResumes() throws {
        let model = Self.plantedModel(), pairs = Self.plantedPairs()
        let g = CircuitGraph(config: model.config)
        let planted = Set([Edge(.input, .head(layer: 0, head: 0, port: .v)), Edge(.head(layer: 0, head: 0), .logits)].map { g.index(of: $0)! })
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let tau = 0.1 * abs(experiment.cleanMetric - experiment.corruptMetric)
        for trials in [ACDC.Trials.serial, .attributed] {
            let nodes = try ACDC(experiment, tau: tau, trials: trials, nodesFirst: true)
            let full = nodes.run()
            let kept = Set(g.pruned(full))
            XCTAssertTrue(planted.isSubset(of: kept), "\(trials): kept \(kept.map { g.edge($0).name }.sorted())")
            XCTAssertGreaterThanOrEqual(experiment.evaluate(circuit: Array(kept)).faithfulness, 0.9, "\(trials)")
            let removedNodes = Set(nodes.state.removedNodes)
            XCTAssertFalse(removedNodes.isEmpty, "\(trials): some node is off the circuit")
            XCTAssertFalse(removedNodes.contains(g.index(of: Sender.head(layer: 0, head: 0))), "\(trials): the planted head stays")
            XCTAssertEqual(nodes.state.nodesDone, g.senders.count - 1)
            for e in 0..<g.edgeCount where removedNodes.contains(g.index(of: g.edge(e).sender)) {
                XCTAssertFalse(full.contains(e), "\(trials): \(g.edge(e).name) leaves a removed node")
            }
            let decided = nodes.state.removed + nodes.state.dropped + Array(nodes.state.keptEffects.keys)
            XCTAssertEqual(Set(decided).count, decided.count, "\(trials): every edge decided once")
            XCTAssertEqual(nodes.state.edgesTried, nodes.state.removed.count + nodes.state.keptEffects.count, "\(trials)")
            // A removed node's receivers are skipped: their edges are dropped untried.
            let untried = Set(nodes.state.dropped + nodes.state.removed)
            for e in 0..<g.edgeCount {
                guard let node = g.edge(e).receiver.node, removedNodes.contains(g.index(of: node)) else { continue }
                XCTAssertTrue(untried.contains(e) && nodes.state.keptEffects[e] == nil, "\(trials): \(g.edge(e).name) into a removed node")
            }

            var saved: ACDC.State?
            var steps: [ACDC.Progress] = []
            _ = try ACDC(experiment, tau: tau, trials: trials, nodesFirst: true).run { state, progress in
                if progress.nodesDone == 3, progress.receiversDone == 0, saved == nil { saved = state }
                steps.append(progress)
            }
            // Node seconds are all the seconds while nodes are tried, then stay what the node trials took.
            let nodeSteps = steps.filter { $0.receiversDone == 0 }, edgeSteps = steps.filter { $0.receiversDone > 0 }
            XCTAssertEqual(nodeSteps.count, g.senders.count - 1, "\(trials)")
            XCTAssertEqual(edgeSteps.count, g.receivers.count, "\(trials)")
            for step in nodeSteps { XCTAssertEqual(step.nodeSeconds, step.seconds, "\(trials)") }
            for step in edgeSteps { XCTAssertEqual(step.nodeSeconds, nodeSteps.last!.seconds, "\(trials)") }
            XCTAssertGreaterThan(edgeSteps.last!.seconds, edgeSteps.last!.nodeSeconds, "\(trials)")
            let state = try JSONDecoder().decode(ACDC.State.self, from: JSONEncoder().encode(try XCTUnwrap(saved, "\(trials)")))
            XCTAssertEqual(state.nodesDone, 3)
            XCTAssertEqual(try ACDC(experiment, tau: tau, trials: trials, nodesFirst: true, resume: state).run(), full, "\(trials)")
            XCTAssertThrowsError(try ACDC(experiment, tau: tau, trials: trials, resume: state)) { error in
                XCTAssertTrue("\(error)".contains("nodes first"), "\(error)")
            }
            var damaged = state
            damaged.nodesDone = g.senders.count
            XCTAssertThrowsError(try ACDC(experiment, tau: tau, trials: trials, nodesFirst: true, resume: damaged)) { error in
                XCTAssertTrue("\(error)".contains("nodes_done"), "\(error)")
            }
        }
    }

    /// Grouped and attributed runs resumed from their state (attributed: in the middle of a layer,
    /// after its gradient) end where the uninterrupted runs end; their states are refused by serial trials.
    func testGroupedAndAttributedACDCResumeAndRefuseSerialTrials() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let order = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: 5)
        let tau = 0.02 * abs(experiment.cleanMetric - experiment.corruptMetric)
        let variants: [(ACDC.Trials, (ACDC.State?) throws -> ACDC)] = [
            (.grouped, { try ACDC(experiment, tau: tau, trials: .grouped, order: order, resume: $0) }),
            (.attributed, { try ACDC(experiment, tau: tau, trials: .attributed, resume: $0) }),
        ]
        for (trials, make) in variants {
            let full = try make(nil).run()
            var saved: ACDC.State?
            // Saved after an MLP: for attributed trials its layer's gradient is taken and its attention block is still to do.
            _ = try make(nil).run { state, progress in
                if progress.receiversDone >= 10, case .mlp = progress.receiver, saved == nil { saved = state }
            }
            let state = try JSONDecoder().decode(ACDC.State.self, from: JSONEncoder().encode(try XCTUnwrap(saved)))
            XCTAssertEqual(state.trials, trials)
            if trials == .attributed {
                let g = experiment.graph
                XCTAssertEqual(state.gradientAt?.layer, g.receivers[g.receivers.count - state.receiversDone].layer, "saved after its layer's gradient")
            }
            XCTAssertEqual(try make(state).run(), full, "\(trials)")
            XCTAssertThrowsError(try ACDC(experiment, tau: tau, resume: state)) { error in
                XCTAssertTrue("\(error)".contains("\(trials.rawValue) trials"), "\(error)")
            }
        }
    }

    /// A saved state that does not fit the graph or contradicts itself is refused, naming what is wrong.
    func testACDCRefusesDamagedStates() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        var saved: ACDC.State?
        _ = try ACDC(experiment, tau: 0.02).run { state, progress in if progress.receiversDone == 10 { saved = state } }
        let good = try XCTUnwrap(saved)
        XCTAssertNoThrow(try ACDC(experiment, tau: 0.02, resume: good))
        let edges = experiment.graph.edgeCount
        let damaged: [(String, (inout ACDC.State) -> Void)] = [
            ("edge index \(edges)", { $0.removed.append(edges) }),
            ("edge index -1", { $0.dropped.append(-1) }),
            ("receivers_done -1", { $0.receiversDone = -1 }),
            ("receivers_done \(Int.max)", { $0.receiversDone = .max }),
            ("edges tried", { $0.edgesTried = .max }),
            ("tau nan", { $0.tau = .nan }),
            ("listed twice", { $0.removed.append($0.removed[0]) }),
            ("not visited yet", { $0.keptEffects[0] = 0.5 }),
        ]
        XCTAssertFalse(good.removed.isEmpty)
        for (expected, damage) in damaged {
            var state = good
            damage(&state)
            XCTAssertThrowsError(try ACDC(experiment, tau: 0.02, resume: state), expected) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(expected) in: \(error)")
            }
        }
    }

    func testACDCCanResumeFromASavedState() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .kl)
        let full = try ACDC(experiment, tau: 0.02).run()
        var saved: ACDC.State?
        let first = try ACDC(experiment, tau: 0.02)
        _ = first.run { state, progress in if progress.receiversDone == 10 { saved = state } }
        let data = try JSONEncoder().encode(try XCTUnwrap(saved))
        let resumed = try ACDC(experiment, tau: 0.02, resume: JSONDecoder().decode(ACDC.State.self, from: data)).run()
        XCTAssertEqual(resumed, full)
        // A state of this run is refused by a run on other pairs, another metric or another ablation.
        let others = [try Experiment(model: model, pairs: pairs.slice(0..<pairs.count - 1), metric: .kl),
                      try Experiment(model: model, pairs: pairs, metric: .logitDiff),
                      try Experiment(model: model, pairs: pairs, metric: .kl, ablation: .zero)]
        for (other, field) in zip(others, ["pairs", "metric", "ablation"]) {
            XCTAssertThrowsError(try ACDC(other, tau: 0.02, resume: JSONDecoder().decode(ACDC.State.self, from: data))) { error in
                XCTAssertTrue("\(error)".contains("saved by a run with \(field)"), "\(error)")
            }
        }
        var swapped = pairs
        (swapped.clean[0], swapped.corrupt[0]) = (pairs.corrupt[0], pairs.clean[0])
        XCTAssertThrowsError(try ACDC(try Experiment(model: model, pairs: swapped, metric: .kl), tau: 0.02,
                                      resume: JSONDecoder().decode(ACDC.State.self, from: data))) { error in
            XCTAssertTrue("\(error)".contains("pairs (their tokens)"), "\(error)")
        }
    }
}

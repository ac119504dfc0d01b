import Circuits
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// The patching engine against its invariants, the PyTorch reference, and deliberately naive code.
final class PatchingTests: XCTestCase {
    func testCleanAndFullyCorruptedMasksReproduceTheRuns() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt)
            let clean = try model.forward(pairs.clean).logits.array
            let corrupt = try model.forward(pairs.corrupt).logits.array
            XCTAssertLessThanOrEqual(maxAbsDifference(engine.run(EdgeMask(graph: engine.graph)).array, clean), 1e-5)
            let everything = engine.run(EdgeMask(graph: engine.graph, value: 1)).array
            XCTAssertLessThanOrEqual(maxAbsDifference(everything, corrupt), 1e-4, "\(name): α = 1 everywhere vs the corrupted run")
            // α = 0 written explicitly everywhere except one edge at α = 0 is still clean.
            var mask = EdgeMask(graph: engine.graph)
            mask[engine.graph.edgeCount / 2] = 0
            XCTAssertLessThanOrEqual(maxAbsDifference(engine.run(mask).array, clean), 1e-5)
        }
    }

    /// A run that reads out only some vocabulary columns (what `logit_diff` reads) gives those columns
    /// as the full read-out does, batched too; the experiment's metric is the one on the full logits.
    func testReadingOutSomeColumnsGivesThoseOfTheFullReadout() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt)
            let g = engine.graph, vocab = model.config.vocabularySize
            var mask = EdgeMask(graph: g)
            for e in stride(from: 0, to: g.edgeCount, by: 5) { mask[e] = 1 }
            let full = engine.run([mask, EdgeMask(graph: g)]).array
            let ids = [0, 3, vocab - 1]
            let some = engine.run([mask, EdgeMask(graph: g)], columns: ReadoutColumns(ids, model: model)).array
            for row in 0..<(2 * pairs.count) {
                for id in ids { XCTAssertEqual(some[row * vocab + id], full[row * vocab + id], accuracy: 1e-5 * max(1, abs(full[row * vocab + id])), name) }
            }
            let targets = MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect)
            XCTAssertEqual(Metric.logitDiff.columns(targets), Set(pairs.correct.joined()).union(pairs.incorrect.joined()).sorted())
            XCTAssertNil(Metric.kl.columns(targets))
            let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
            let expected = Metric.logitDiff.evaluate(logits: engine.run(mask).pointer, vocab: vocab, targets: targets).mean
            XCTAssertEqual(experiment.evaluate(mask), expected, accuracy: 1e-5 * max(1, abs(expected)), name)
        }
    }

    /// The PyTorch reference's patched runs (design §4, upstream patches propagate).
    func testPatchedRunsMatchPyTorchReference() throws {
        struct Patch: Decodable {
            let edges: [String: Float]?
            let values: [String: Double]
            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                edges = try? c.decode([String: Float].self, forKey: .edges)
                values = try c.decode([String: Double].self, forKey: .values)
            }
            enum CodingKeys: String, CodingKey { case edges, values }
        }
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, reference, pairs) = try tinyFixture(name)
            let patches: [Patch] = try reference.json("patches")
            XCTAssertGreaterThanOrEqual(patches.count, 6)
            for metric in Metric.allCases {
                let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
                for patch in patches {
                    var mask = EdgeMask(graph: experiment.graph, value: patch.edges == nil ? 1 : 0)
                    for (edgeName, alpha) in patch.edges ?? [:] {
                        let edge = try XCTUnwrap(experiment.graph.edge(named: edgeName), edgeName)
                        mask[experiment.graph.index(of: edge)!] = alpha
                    }
                    let expected = try XCTUnwrap(patch.values[metric.rawValue])
                    XCTAssertEqual(experiment.evaluate(mask), expected, accuracy: 2e-4 * max(1, abs(expected)),
                                   "\(name) \(metric.rawValue) \(patch.edges.map { "\($0)" } ?? "all")")
                }
            }
        }
    }

    /// Split into chunks (engines kept, or rebuilt for every evaluation when the memory budget is 0), the
    /// experiment gives the whole batch's baselines and metrics under masks; mean ablation keeps the
    /// means of all pairs.
    func testChunkedExperimentMatchesTheWholeBatch() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        XCTAssertGreaterThanOrEqual(pairs.count, 3, "chunks of 2 need a partial last chunk")
        var rng = SeededRandom(seed: 7)
        let masks = (0..<3).map { _ in
            var mask = EdgeMask(graph: model.graph)
            for e in 0..<model.graph.edgeCount { mask[e] = rng.nextFloat() < 0.3 ? 1 : 0 }
            return mask
        }
        for metric in [Metric.logitDiff, .kl] {
            for ablation in [Ablation.resample, .mean] {
                let whole = try Experiment(model: model, pairs: pairs, metric: metric, ablation: ablation)
                XCTAssertEqual(whole.chunks, [0..<pairs.count])
                let wholeBytes = Experiment.engineBytes(model: model, rows: pairs.clean.reduce(0) { $0 + $1.count }, examples: pairs.count)
                for budget in [0, wholeBytes - 1] {
                    let chunked = try Experiment(model: model, pairs: pairs, metric: metric, ablation: ablation, chunkSize: 2, memoryBudget: budget)
                    let label = "\(metric.rawValue) \(ablation.rawValue) budget \(budget)"
                    // No budget: one pair per chunk, none kept; just under the whole: chunks of 2, all but the last kept.
                    XCTAssertEqual(chunked.chunks.count, budget == 0 ? pairs.count : (pairs.count + 1) / 2, label)
                    XCTAssertEqual(chunked.keptChunks, budget == 0 ? 0 : chunked.chunks.count - 1, label)
                    XCTAssertEqual(chunked.cleanMetric, whole.cleanMetric, accuracy: 1e-5, label)
                    XCTAssertEqual(chunked.corruptMetric, whole.corruptMetric, accuracy: 1e-5, label)
                    for (a, b) in zip(chunked.evaluate(masks), whole.evaluate(masks)) { XCTAssertEqual(a, b, accuracy: 1e-5, label) }
                }
            }
        }
    }

    /// Experiments hold their kept engines' bytes in the process's one cache account while they live,
    /// so a second experiment plans against what the first left; an account refuses what it lacks.
    func testExperimentsShareTheProcessCacheBudget() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let before = CacheBudget.shared.available
        let bytes = Experiment.engineBytes(model: model, rows: pairs.clean.reduce(0) { $0 + $1.count }, examples: pairs.count)
        do {
            let first = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
            XCTAssertEqual(before - CacheBudget.shared.available, bytes)
            let second = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
            XCTAssertEqual(before - CacheBudget.shared.available, 2 * bytes)
            withExtendedLifetime((first, second)) {}
        }
        XCTAssertEqual(CacheBudget.shared.available, before)
        let account = CacheBudget(bytes: 100)
        XCTAssertTrue(account.reserve(60))
        XCTAssertFalse(account.reserve(60))
        XCTAssertEqual(account.available, 40)
        account.release(60)
        XCTAssertEqual(account.available, 100)
    }

    /// EAP and EAP-IG hand their clean and corrupted runs to the setup, whose experiment is then made
    /// of them: the same baselines and metrics under masks as an experiment that runs the prompts
    /// itself, and the same scores as EAP without sharing.
    func testExperimentSharedWithEAPMatchesItsOwnRuns() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        var rng = SeededRandom(seed: 11)
        let masks = (0..<3).map { _ in
            var mask = EdgeMask(graph: model.graph)
            for e in 0..<model.graph.edgeCount { mask[e] = rng.nextFloat() < 0.3 ? 1 : 0 }
            return mask
        }
        for (steps, ablation) in [(nil, Ablation.resample), (nil, .mean), (nil, .zero), (2, .resample)] as [(Int?, Ablation)] {
            let label = "steps \(steps.map(String.init) ?? "none"), \(ablation.rawValue)"
            var notes: [String] = []
            let setup = DiscoverySetup(model: model, pairs: pairs, source: "fixture", metric: .logitDiff, ablation: ablation) {
                if case .note(let text) = $0 { notes.append(text) }
            }
            let method = EAPMethod(steps: steps, chunkSize: 2)
            let shared = try method.scores(setup, progress: nil)
            XCTAssertTrue(notes.contains { $0.hasPrefix("clean and corrupted runs shared") }, "\(label): \(notes)")
            let experiment = try setup.experiment()
            XCTAssertEqual(experiment.chunks.count, (pairs.count + 1) / 2, label)
            let own = try Experiment(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation)
            XCTAssertEqual(experiment.cleanMetric, own.cleanMetric, accuracy: 1e-5, label)
            XCTAssertEqual(experiment.corruptMetric, own.corruptMetric, accuracy: 1e-5, label)
            for (a, b) in zip(experiment.evaluate(masks), own.evaluate(masks)) { XCTAssertEqual(a, b, accuracy: 1e-5, label) }
            let alone = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation,
                                                   integratedGradientSteps: steps, chunkSize: 2)
            XCTAssertEqual(shared, alone, label)
        }
    }

    /// Corrupting every edge into one receiver equals feeding that receiver the corrupted run's input.
    func testCorruptingAllEdgesIntoAReceiverFeedsItTheCorruptedInput() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt)
        let corruptPass = try model.forward(pairs.corrupt, keepActivations: true)
        let g = engine.graph
        for receiver in [Receiver.head(layer: 1, head: 2, port: .k), .head(layer: 1, head: 0, port: .q), .mlp(layer: 1),
                         .head(layer: 0, head: 3, port: .v), .logits] {
            var mask = EdgeMask(graph: g)
            let r = g.index(of: receiver)
            for e in g.edgeOffsets[r]..<g.edgeOffsets[r + 1] { mask[e] = 1 }
            let patched = engine.run(mask).array
            let expected = try naiveRun(model, pairs.clean, receiver: receiver) { layer, point in
                switch point {
                case .pre: return corruptPass.layers[layer].residPre
                case .mid: return corruptPass.layers[layer].residMid
                case .final: return corruptPass.residFinal
                }
            }
            XCTAssertLessThanOrEqual(maxAbsDifference(patched, expected), 1e-4, receiver.name)
        }
    }

    /// Exact edge and node patching past the budget (every engine rebuilt, a group of edges per rebuild)
    /// give each mask's own evaluation, and the whole batch's scores to rounding; progress comes after
    /// each group and ends at the total.
    func testExactPatchingOfRebuiltChunksMatchesOneEvaluationPerEdge() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let whole = try Experiment(model: model, pairs: pairs, metric: .kl)
        let chunked = try Experiment(model: model, pairs: pairs, metric: .kl, chunkSize: 2, memoryBudget: 0)
        XCTAssertEqual(chunked.keptChunks, 0)
        let g = model.graph
        let edges = Array(stride(from: 3, to: g.edgeCount, by: max(1, g.edgeCount / 40)))
        XCTAssertGreaterThan(edges.count, 2 * ExactPatching.rebuiltGroup, "edges span several groups")
        var reported: [Int] = []
        let exact = ExactPatching.scores(chunked, edges: edges) { done, total in
            XCTAssertEqual(total, edges.count)
            reported.append(done)
        }
        XCTAssertEqual(reported, Array(stride(from: ExactPatching.rebuiltGroup, to: edges.count, by: ExactPatching.rebuiltGroup)) + [edges.count])
        let one = edges.map { e -> Float in
            var mask = EdgeMask(graph: g)
            mask[e] = 1
            return Float(chunked.evaluate(mask) - chunked.cleanMetric)
        }
        XCTAssertEqual(exact, one)
        XCTAssertTrue(exact.contains { $0 != 0 })
        for (a, b) in zip(exact, ExactPatching.scores(whole, edges: edges)) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (a, b) in zip(NodePatching.scores(chunked), NodePatching.scores(whole)) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// `exact` against a brute-force patching written for this test: a full forward from the embedding
    /// in which one receiver reads `clean + corrupt_s − clean_s`.
    func testExactEqualsBruteForce() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let clean = try model.forward(pairs.clean, keepActivations: true, captureSenders: true)
        let corrupt = try model.forward(pairs.corrupt, captureSenders: true)
        let g = experiment.graph
        let plane = clean.layout.rows * model.config.dModel
        let edges = [0, 5, 17, 40, 61, 99, g.edgeCount - 1, g.edgeCount - 7]  // 110 edges
        let exact = ExactPatching.scores(experiment, edges: edges)
        for (i, e) in edges.enumerated() {
            let edge = g.edge(e)
            let s = g.index(of: edge.sender)
            let logits = try naiveRun(model, pairs.clean, receiver: edge.receiver) { layer, point in
                let base: FloatBuffer
                switch point {
                case .pre: base = clean.layers[layer].residPre
                case .mid: base = clean.layers[layer].residMid
                case .final: base = clean.residFinal
                }
                let input = FloatBuffer(count: plane)
                for j in 0..<plane {
                    input[j] = base[j] + corrupt.senders![s * plane + j] - clean.senders![s * plane + j]
                }
                return input
            }
            let value = Metric.logitDiff.evaluate(logits: logits, vocab: model.config.vocabularySize, targets: MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect)).mean
            XCTAssertEqual(Double(exact[i]), value - experiment.cleanMetric, accuracy: 1e-4, edge.name)
        }
    }

    private enum Point { case pre, mid, final }

    /// Logits at the last tokens of a plain forward from the embedding where only `receiver` reads `input(layer, point)`.
    private func naiveRun(
        _ model: TransformerModel, _ batch: [[Int]], receiver: Receiver, input: (Int, Point) throws -> FloatBuffer
    ) throws -> [Float] {
        let c = model.config
        let layout = SequenceLayout(lengths: batch.map(\.count))
        let acts = LayerActivations(config: c, layout: layout)
        model.embed(acts.residPre.pointer, tokens: batch.flatMap { $0 }, layout: layout)
        let plane = layout.rows * c.dModel
        let mlpOut = FloatBuffer(count: plane), final = FloatBuffer(count: plane)
        var keep: [FloatBuffer] = []
        for l in 0..<c.layers {
            var inputs: ReceiverInputs?
            if case .head(let rl, let h, let port) = receiver, rl == l {
                let x = try input(l, .pre)
                keep.append(x)
                var replaced = ReceiverInputs(heads: c.heads)
                switch port {
                case .q: replaced.q[h] = UnsafePointer(x.pointer)
                case .k: replaced.k[h] = UnsafePointer(x.pointer)
                case .v: replaced.v[h] = UnsafePointer(x.pointer)
                }
                inputs = replaced
            }
            model.attentionForward(layer: l, acts, layout: layout, inputs: inputs)
            var mlpInput: UnsafePointer<Float>?
            if receiver == .mlp(layer: l) {
                let x = try input(l, .mid)
                keep.append(x)
                mlpInput = UnsafePointer(x.pointer)
            }
            model.mlpForward(layer: l, acts, layout: layout, input: mlpInput, mlpOut: mlpOut.pointer,
                             residPost: l == c.layers - 1 ? final.pointer : acts.residPre.pointer)
        }
        let readout = UnembeddingActivations(config: c, rows: layout.count)
        let resid = receiver == .logits ? try input(c.layers, .final) : final
        model.logitsForward(readout, resid: resid.pointer, rows: layout.lastRows)
        withExtendedLifetime(keep) {}
        return readout.logits.array
    }

    /// A node removed whole (every outgoing edge corrupted) reaches later receivers through one shift
    /// shared by all of them: the same mask with those coefficients a hair below 1, added receiver by
    /// receiver, gives the same metric, alone and in a batch with other masks.
    func testNodesRemovedWholeEqualTheirEdgesAddedOneByOne() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
            let g = experiment.graph
            var whole = EdgeMask(graph: g), hair = EdgeMask(graph: g)
            for e in stride(from: 0, to: g.edgeCount, by: 7) { (whole[e], hair[e]) = (0.5, 0.5) }
            for node in [Sender.head(layer: 0, head: 1), .mlp(layer: 0), .head(layer: 1, head: 0)] {
                let s = g.index(of: node)
                for r in 0..<g.receivers.count where g.upstreamCount(receiverAt: r) > s {
                    (whole[g.edgeOffsets[r] + s], hair[g.edgeOffsets[r] + s]) = (1, Float(1).nextDown)
                }
            }
            let value = experiment.evaluate(whole), scale = max(1, abs(value))
            XCTAssertGreaterThan(abs(value - experiment.cleanMetric), 1e-3, "\(name): the mask changes the metric")
            XCTAssertEqual(value, experiment.evaluate(hair), accuracy: 1e-5 * scale, name)
            let batched = experiment.evaluate([EdgeMask(graph: g), whole, hair])
            XCTAssertEqual(batched[1], value, accuracy: 1e-6 * scale, "\(name): batched")
            XCTAssertEqual(batched[2], value, accuracy: 1e-5 * scale, "\(name): batched, one by one")
        }
    }

    /// A circuit's evaluation computes dense receiver inputs as products over the senders; it gives the
    /// metric of the same mask summed edge by edge, for circuits from a few edges to most of the graph,
    /// with a node removed whole, under every ablation, and from runs started from another mask.
    func testCircuitEvaluationsAsProductsEqualEdgeByEdgeSums() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            for ablation in Ablation.allCases {
                let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation, chunkSize: 2)
                let g = experiment.graph
                let removed = g.index(of: Sender.head(layer: 0, head: 1))
                let circuits = [stride(from: 0, to: g.edgeCount, by: 2), stride(from: 3, to: g.edgeCount, by: 11),
                                stride(from: 1, to: g.edgeCount, by: 97)].map(Array.init)
                    + [(0..<g.edgeCount).filter { $0 % 10 != 0 && $0 - g.edgeOffsets[g.receiver(ofEdge: $0)] != removed }]
                for (c, edges) in circuits.enumerated() {
                    let mask = EdgeMask(graph: g, keeping: edges)
                    let summed = experiment.evaluate(mask), scale = max(1, abs(summed))
                    XCTAssertGreaterThan(abs(summed - experiment.cleanMetric), 1e-4, "\(name), \(ablation), circuit \(c): the circuit changes the metric")
                    XCTAssertEqual(experiment.evaluate(circuit: edges).metric, summed, accuracy: 1e-5 * scale, "\(name), \(ablation), circuit \(c)")
                }
                var base = EdgeMask(graph: g)
                for r in 0..<g.receivers.count where g.upstreamCount(receiverAt: r) > removed { base[g.edgeOffsets[r] + removed] = 1 }
                experiment.startRuns(from: base)
                for c in [1, 3] {
                    let edges = circuits[c], summed = experiment.evaluate(EdgeMask(graph: g, keeping: edges))
                    XCTAssertEqual(experiment.evaluate(circuit: edges).metric, summed, accuracy: 1e-5 * max(1, abs(summed)),
                                   "\(name), \(ablation), circuit \(c) from a base")
                }
                experiment.startRuns(from: nil)
            }
        }
    }

    /// Runs started from a run under another mask (ACDC's removed nodes) give the same metrics and
    /// gradients as runs from the clean run: masks equal to it, agreeing with it below a layer, differing
    /// from it low in the graph, and all zeros; batched and alone.
    func testRunsStartedFromAnotherMaskEqualRunsFromTheCleanRun() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 2)
            let g = experiment.graph
            var base = EdgeMask(graph: g)
            for s in [g.index(of: Sender.head(layer: 0, head: 1)), g.index(of: Sender.mlp(layer: 0))] {
                for r in 0..<g.receivers.count where g.upstreamCount(receiverAt: r) > s { base[g.edgeOffsets[r] + s] = 1 }
            }
            var above = base, low = base
            for e in g.edgeOffsets[g.attentionReceivers(ofLayer: g.layers - 1).lowerBound]..<g.edgeCount where e % 3 == 0 { above[e] = 1 }
            low[g.edgeOffsets[g.attentionReceivers(ofLayer: 0).lowerBound]] = 1
            let masks = [base, above, low, EdgeMask(graph: g)]
            let expected = masks.map { experiment.evaluate($0) }
            let gradients = masks.map { experiment.gradient($0, through: g.layers - 1) }
            experiment.startRuns(from: base)
            XCTAssertGreaterThan(abs(expected[0] - experiment.cleanMetric), 1e-3, "\(name): the base changes the metric")
            for (i, mask) in masks.enumerated() {
                XCTAssertEqual(experiment.evaluate(mask), expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "\(name) mask \(i)")
                let gradient = experiment.gradient(mask, through: g.layers - 1)
                XCTAssertEqual(gradient.metric, gradients[i].metric, accuracy: 1e-5 * max(1, abs(expected[i])), "\(name) mask \(i)")
                let scale = max(gradients[i].edges.map(abs).max() ?? 0, 1e-12)
                XCTAssertLessThanOrEqual(maxAbsDifference(gradient.edges, gradients[i].edges), 1e-5 * scale, "\(name) mask \(i)")
            }
            let batched = experiment.evaluate(masks)
            for i in masks.indices { XCTAssertEqual(batched[i], expected[i], accuracy: 1e-5 * max(1, abs(expected[i])), "\(name) batched \(i)") }
            experiment.startRuns(from: nil)
            XCTAssertEqual(experiment.evaluate(above), expected[1], accuracy: 1e-5 * max(1, abs(expected[1])), "\(name): from the clean run again")
        }
    }

    /// Several masks in one batched run give each mask's own logits.
    func testBatchedRunEqualsSeparateRuns() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt)
        let g = engine.graph
        var masks = [EdgeMask(graph: g), EdgeMask(graph: g, value: 1), EdgeMask(graph: g), EdgeMask(graph: g)]
        masks[2][g.edgeCount - 3] = 1
        for e in stride(from: 5, to: g.edgeCount, by: 7) { masks[3][e] = 0.5 }
        let separate = masks.map { engine.run($0).array }
        let batched = engine.run(masks).array
        let size = separate[0].count
        for (k, expected) in separate.enumerated() {
            XCTAssertLessThanOrEqual(maxAbsDifference(batched[(k * size)..<((k + 1) * size)], expected), 1e-5, "mask \(k)")
        }
    }

    /// A single mask's ports whose edges are all corrupted read the corrupted stream itself, normalized
    /// once and projected once per key/value group; in a batched run each port has its own copy. The
    /// logits must be the same, bit for bit, for every ablation (the corrupted stream is recorded from
    /// the corrupted run under resample ablation and summed from the senders otherwise).
    func testSharedCorruptedInputsEqualPerPortInputs() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            for ablation in Ablation.allCases {
                let engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt, ablation: ablation)
                let g = engine.graph
                // A circuit: every edge corrupted but a few, so most receivers read the corrupted stream.
                var circuit = EdgeMask(graph: g, value: 1)
                for e in stride(from: 3, to: g.edgeCount, by: 11) { circuit[e] = 0 }
                let single = engine.run(circuit).array
                let batched = engine.run([circuit, circuit]).array
                XCTAssertEqual(maxAbsDifference(batched[0..<single.count], single), 0, "\(name), \(ablation)")
                XCTAssertEqual(maxAbsDifference(batched[single.count...], single), 0, "\(name), \(ablation)")
            }
        }
    }

    func testMeanAndZeroAblationBaselines() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let zero = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt, ablation: .zero)
        // Every edge zero-ablated: every receiver reads only bias constants (none in Llama): zeros in, so the
        // logits equal the unembedding of the final norm of a zero vector, the same for every example.
        let logits = zero.run(EdgeMask(graph: zero.graph, value: 1)).array
        let vocab = model.config.vocabularySize
        XCTAssertLessThanOrEqual(maxAbsDifference(logits[0..<vocab], logits[vocab..<(2 * vocab)]), 1e-6)
        // Mean ablation with a single example equals resample ablation.
        let one = PairBatch(clean: [pairs.clean[0]], corrupt: [pairs.corrupt[0]], correct: [pairs.correct[0]], incorrect: [pairs.incorrect[0]])
        let mean = try PatchingEngine(model: model, clean: one.clean, corrupt: one.corrupt, ablation: .mean)
        let resample = try PatchingEngine(model: model, clean: one.clean, corrupt: one.corrupt, ablation: .resample)
        var mask = EdgeMask(graph: mean.graph)
        for e in stride(from: 0, to: mask.alpha.count, by: 3) { mask[e] = 1 }
        XCTAssertLessThanOrEqual(maxAbsDifference(mean.run(mask).array, resample.run(mask).array), 1e-5)
    }

    func testMismatchedPairLengthsAreAnError() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        var bad = pairs
        bad.corrupt[1].append(3)
        XCTAssertThrowsError(try Experiment(model: model, pairs: bad, metric: .logitDiff)) { error in
            XCTAssertTrue("\(error)".contains("pair 1"), "\(error)")
        }
    }
}

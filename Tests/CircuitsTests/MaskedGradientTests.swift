import Circuits
import Kernels
import TestSupport
import Transformer
import XCTest

/// The gradient of a run under an edge mask α (design §4): against PyTorch autograd of a masked model
/// (`Tests/Fixtures/generate_masked.py`), against central finite differences of the patched metric,
/// and at α = 0 against EAP.
final class MaskedGradientTests: XCTestCase {
    private let masks = ["dense", "sparse"]

    /// The tiny model, its masked reference and its prompt pairs.
    private func fixture(_ name: String) throws -> (TransformerModel, ReferenceFile, PairBatch) {
        let (model, reference, pairs) = try tinyFixture(name, reference: "masked-\(name)")
        XCTAssertEqual(try reference.json("edges", as: [String].self), (0..<model.graph.edgeCount).map { model.graph.edge($0).name },
                       "\(name): the reference's edge order differs from CircuitGraph's")
        return (model, reference, pairs)
    }

    /// ∂M/∂α of `edge` at `mask` from the experiment's patched metric: central differences with steps 0.01
    /// and 0.02, combined by Richardson extrapolation to cancel their h² error terms.
    private func numericDerivative(_ experiment: Experiment, _ mask: EdgeMask, edge e: Int) -> Double {
        /// Central difference with step h.
        func derivative(_ h: Float) -> Double {
            var shifted = mask
            shifted[e] += h
            let plus = experiment.evaluate(shifted)
            shifted[e] -= 2 * h
            return (plus - experiment.evaluate(shifted)) / (2 * Double(h))
        }
        return (4 * derivative(0.01) - derivative(0.02)) / 3
    }

    /// Largest |a − b| relative to the reference's largest |value|.
    private func scaledError(_ a: [Float], _ reference: [Float]) -> Float {
        maxAbsDifference(a, reference) / max(reference.map(abs).max() ?? 0, 1e-12)
    }

    /// ∂M/∂α, ∂M/∂input and M under dense and sparse masks equal PyTorch's autograd of the masked model.
    func testMaskedGradientMatchesAutograd() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, reference, pairs) = try fixture(name)
            let values: [String: [String: Double]] = try reference.json("values")
            for maskName in masks {
                let mask = EdgeMask(alpha: try reference.tensor("alpha.\(maskName)"))
                for metric in Metric.allCases {
                    let label = "\(name) \(maskName) \(metric.rawValue)"
                    // Two chunks, so the sum over chunks and the packing of input rows are tested too.
                    let g = try EdgeAttribution.gradient(model: model, pairs: pairs, metric: metric, mask: mask,
                                                         chunkSize: (pairs.count + 1) / 2, inputGradient: true)
                    XCTAssertEqual(g.metric, try XCTUnwrap(values[maskName]?[metric.rawValue]), accuracy: 1e-4, label)
                    let edges = try reference.tensor("grad_alpha.\(maskName).\(metric.rawValue)")
                    XCTAssertLessThanOrEqual(scaledError(g.edges, edges), 2e-4, "\(label): ∂M/∂α")
                    let layout = SequenceLayout(lengths: pairs.clean.map(\.count))
                    let input = try reference.packed("grad_input.\(maskName).\(metric.rawValue)", layout: layout)
                    XCTAssertLessThanOrEqual(scaledError(try XCTUnwrap(g.input).array, input), 2e-4, "\(label): ∂M/∂input")
                }
            }
        }
    }

    /// At α = 0 the masked gradient is EAP's score, and both equal the reference's α = 0 autograd.
    func testZeroMaskGradientIsEAP() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, reference, pairs) = try fixture(name)
            let eap = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff)
            let zero = try EdgeAttribution.gradient(model: model, pairs: pairs, metric: .logitDiff, mask: EdgeMask(graph: model.graph))
            XCTAssertLessThanOrEqual(maxAbsDifference(zero.edges, eap), 1e-5, name)
            XCTAssertLessThanOrEqual(scaledError(eap, try reference.tensor("grad_alpha.zero.logit_diff")), 1e-4, name)
        }
    }

    /// ∂M/∂α at a mask inside (0, 1) against central differences of the patched metric (the patching
    /// engine, an independent path through the model).
    func testMaskedGradientMatchesFiniteDifferences() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, reference, pairs) = try fixture(name)
            let mask = EdgeMask(alpha: try reference.tensor("alpha.dense"))
            for metric in [Metric.logitDiff, .kl] {
                let experiment = try Experiment(model: model, pairs: pairs, metric: metric)
                let g = try EdgeAttribution.gradient(model: model, pairs: pairs, metric: metric, mask: mask)
                XCTAssertEqual(g.metric, experiment.evaluate(mask), accuracy: 1e-4, "\(name) \(metric.rawValue): metric under the mask")
                let scale = Double(g.edges.map(abs).max()!)
                let graph = model.graph
                for e in [0, 5, 17, 40, 63, graph.edgeCount - 9, graph.edgeCount - 1] {
                    XCTAssertEqual(Double(g.edges[e]), numericDerivative(experiment, mask, edge: e), accuracy: 2e-3 * scale,
                                   "\(name) \(metric.rawValue) \(graph.edge(e).name)")
                }
            }
        }
    }

    /// EAP-IG interpolates embeddings, which mean and zero ablation do not define: refused with a reason.
    func testIntegratedGradientsRefuseMeanAndZeroAblation() throws {
        let (model, _, pairs) = try fixture("tiny-llama")
        for ablation in [Ablation.mean, .zero] {
            XCTAssertThrowsError(try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation,
                                                            integratedGradientSteps: 2)) { error in
                XCTAssertTrue("\(error)".contains("resample"), "\(error)")
            }
        }
    }

    /// EAP with mean ablation is ∂M/∂α at 0 of the mean-ablated patched metric (design §4, §6).
    func testEAPWithMeanAblationEqualsFiniteDifference() throws {
        let (model, _, pairs) = try fixture("tiny-gpt2")
        for ablation in [Ablation.mean, .zero] {
            let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation)
            let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation)
            let scale = Double(scores.map(abs).max()!)
            for e in [1, 9, 33, 70, model.graph.edgeCount - 2] {
                var mask = EdgeMask(graph: model.graph)
                mask[e] = 0.01
                let plus = experiment.evaluate(mask)
                mask[e] = -0.01
                let numeric = (plus - experiment.evaluate(mask)) / 0.02
                XCTAssertEqual(Double(scores[e]), numeric, accuracy: 2e-3 * scale, "\(ablation.rawValue) \(model.graph.edge(e).name)")
            }
        }
    }

    /// Chunks cached (within the budget, or past it and so recomputed) give the same metric and gradient;
    /// caching ahead keeps every chunk within a large budget and none within a budget of 0.
    func testCachedAndRecomputedChunksGiveTheSameGradient() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        var mask = EdgeMask(graph: model.graph)
        for e in stride(from: 0, to: model.graph.edgeCount, by: 3) { mask[e] = 0.5 }
        let plain = try MaskedGradient(model: model, pairs: pairs, metric: .kl, chunkSize: 2).gradient(mask)
        for budget in [0, Int.max] {
            let cached = try MaskedGradient(model: model, pairs: pairs, metric: .kl, chunkSize: 2, cachesChunks: true, memoryBudget: budget)
            try cached.cacheChunks()
            XCTAssertGreaterThan(cached.chunkCount, 1)
            XCTAssertEqual(cached.cachedChunkCount, budget == 0 ? 0 : cached.chunkCount, "budget \(budget)")
            for _ in 0..<2 {
                let again = try cached.gradient(mask)
                XCTAssertEqual(again.metric, plain.metric, "budget \(budget)")
                XCTAssertEqual(again.edges, plain.edges, "budget \(budget)")
            }
        }
    }

    /// A minibatch of chunks gives the metric and gradient of a gradient built on those chunks' pairs alone;
    /// chunks that are not the batch's are refused; the clean metric of chunks is the masked one with every
    /// edge clean.
    func testChunksGiveTheGradientOfTheirPairs() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        XCTAssertGreaterThanOrEqual(pairs.count, 3)
        var mask = EdgeMask(graph: model.graph)
        for e in stride(from: 1, to: model.graph.edgeCount, by: 4) { mask[e] = 0.3 }
        let masked = try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 1)
        let chosen = [2, 0]
        let subset = PairBatch(clean: [pairs.clean[0], pairs.clean[2]], corrupt: [pairs.corrupt[0], pairs.corrupt[2]],
                               correct: [pairs.correct[0], pairs.correct[2]], incorrect: [pairs.incorrect[0], pairs.incorrect[2]])
        let alone = try MaskedGradient(model: model, pairs: subset, metric: .logitDiff, chunkSize: 1).gradient(mask)
        let batch = try masked.gradient(mask, chunks: chosen)
        XCTAssertEqual(batch.metric, alone.metric, accuracy: 1e-5 * max(1, abs(alone.metric)))
        let scale = alone.edges.map(abs).max()!
        for e in alone.edges.indices { XCTAssertEqual(batch.edges[e], alone.edges[e], accuracy: 1e-5 * scale) }
        XCTAssertEqual(try masked.gradient(mask, chunks: Array(0..<masked.chunkCount)).edges, try masked.gradient(mask).edges)
        for bad in [[masked.chunkCount], [0, 0], []] { XCTAssertThrowsError(try masked.gradient(mask, chunks: bad), "\(bad)") }
        // With every edge clean, the masked metric is the clean one, on every pair and on a minibatch.
        let clean = EdgeMask(graph: model.graph)
        XCTAssertEqual(try masked.cleanMetric(), try masked.gradient(clean).metric, accuracy: 1e-5)
        XCTAssertEqual(try masked.cleanMetric(chunks: chosen), try masked.gradient(clean, chunks: chosen).metric, accuracy: 1e-5)
        let fresh = try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 1)  // no chunk run yet
        XCTAssertEqual(try fresh.cleanMetric(), try Experiment(model: model, pairs: pairs, metric: .logitDiff).cleanMetric, accuracy: 1e-5)
    }

    /// The experiment's gradient through a layer (runs from that layer, backward passes stopping there,
    /// as ACDC's attributed trials take it) equals the masked gradient on every edge into that layer,
    /// with the same metric, and leaves the edges into other layers at 0: for masks that patch only from
    /// the layer on, and for a mask that patches below it too (the run then starts lower); with nodes removed
    /// whole and runs started from that graph (ACDC's edge trials), the edges out of senders cut off score 0.
    func testExperimentGradientThroughALayerEqualsTheMaskedGradient() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let g = model.graph
            // Nodes removed whole, as ACDC's node trials leave them: the input, a head and an MLP.
            let removed = [0, g.index(of: Sender.head(layer: 0, head: 1)), g.index(of: Sender.mlp(layer: g.layers - 1))]
            var nodes = EdgeMask(graph: g)
            for e in 0..<g.edgeCount where removed.contains(g.index(of: g.edge(e).sender)) { nodes[e] = 1 }
            for metric in [Metric.logitDiff, .kl] {
                let experiment = try Experiment(model: model, pairs: pairs, metric: metric, chunkSize: 2)
                let masked = try MaskedGradient(model: model, pairs: pairs, metric: metric, chunkSize: 3)
                var random = SeededRandom(seed: 7)
                let cases = [(0, false, false), (1, false, false), (g.layers - 1, false, false), (g.layers, false, false), (1, true, false),
                             (0, false, true), (1, true, true), (g.layers, false, true)]
                for (layer, patchesBelow, nodesRemoved) in cases {
                    var mask = nodesRemoved ? nodes : EdgeMask(graph: g)
                    for e in 0..<g.edgeCount where (patchesBelow || g.edge(e).receiver.layer >= layer) && mask[e] == 0 {
                        mask[e] = random.nextFloat() < 0.5 ? 1 : Float(random.nextFloat())
                    }
                    // Runs start from the graph with the nodes removed, as ACDC's edge trials do.
                    experiment.startRuns(from: nodesRemoved ? nodes : nil)
                    let label = "\(name) \(metric.rawValue) through layer \(layer)\(patchesBelow ? ", mask below it" : "")\(nodesRemoved ? ", nodes removed" : "")"
                    let whole = try masked.gradient(mask), through = experiment.gradient(mask, through: layer)
                    XCTAssertEqual(through.metric, whole.metric, accuracy: 1e-5 * max(1, abs(whole.metric)), label)
                    // Senders cut off (every outgoing α = 1) are replaced in the run: their edges score 0.
                    var cut = [Bool](repeating: true, count: g.senders.count)
                    for e in 0..<g.edgeCount where mask[e] != 1 { cut[g.index(of: g.edge(e).sender)] = false }
                    let scale = max(whole.edges.map(abs).max() ?? 0, 1e-12)
                    var compared = 0
                    for e in 0..<g.edgeCount {
                        if min(g.edge(e).receiver.layer, g.layers) == layer, !cut[g.index(of: g.edge(e).sender)] {
                            XCTAssertEqual(through.edges[e], whole.edges[e], accuracy: 1e-5 * scale, "\(label): \(g.edge(e).name)")
                            compared += 1
                        } else {
                            XCTAssertEqual(through.edges[e], 0, "\(label): \(g.edge(e).name) is not into the layer or leaves a sender cut off")
                        }
                    }
                    XCTAssertGreaterThan(compared, 0, label)
                }
                experiment.startRuns(from: nil)
            }
        }
    }

    /// Senders whose every outgoing edge is corrupted (nodes removed whole) are skipped by the backward
    /// pass, their output gradient being zero: the gradient equals that of the same mask with those
    /// coefficients a hair below 1, which takes the full path, for the input, heads and MLPs cut off.
    func testSendersCutOffEqualCoefficientsAHairBelowOne() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let g = model.graph
            let masked = try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff, chunkSize: 3)
            var random = SeededRandom(seed: 11)
            var mask = EdgeMask(graph: g)
            for e in 0..<g.edgeCount { mask[e] = random.nextFloat() < 0.3 ? Float(random.nextFloat()) : 0 }
            var almost = mask
            let cut = [0, 1, g.index(of: Sender.mlp(layer: 0)), g.senders.count - 2]
            for r in 0..<g.receivers.count {
                for s in cut where s < g.upstreamCount(receiverAt: r) {
                    mask[g.edgeOffsets[r] + s] = 1
                    almost[g.edgeOffsets[r] + s] = 1 - 1e-6
                }
            }
            let skipped = try masked.gradient(mask), full = try masked.gradient(almost)
            XCTAssertEqual(skipped.metric, full.metric, accuracy: 1e-3 * max(1, abs(full.metric)), name)
            let scale = max(full.edges.map(abs).max() ?? 0, 1e-12)
            XCTAssertLessThanOrEqual(maxAbsDifference(skipped.edges, full.edges), 1e-4 * scale, name)
        }
    }

    /// Masks that corrupt most edges (learned masks past their warm-up, circuit searches) take their own
    /// paths: inputs summed from the corrupted stream, sender gradients summed over the edges with α ≠ 1,
    /// one axpy per edge where few are open. Their gradient equals central differences of the patched
    /// metric, and the gradient of the same mask with the corrupted edges a hair below 1 (which takes the
    /// dense paths); asked for some edges only, those edges' gradients are unchanged. Under resample and
    /// mean ablation (whose corrupted stream is summed from the clean run's).
    func testMostlyCorruptedMasksMatchFiniteDifferencesAndTheDensePaths() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let g = model.graph
            var random = SeededRandom(seed: 5)
            var mask = EdgeMask(graph: g), almost = mask
            var fractional: [Int] = []
            for e in 0..<g.edgeCount {
                let u = random.nextFloat()
                mask[e] = u < 0.04 ? 0 : u < 0.12 ? 0.1 + 0.8 * random.nextFloat() : 1
                almost[e] = mask[e] == 1 ? 1 - 1e-6 : mask[e]
                if mask[e] != 0 && mask[e] != 1 { fractional.append(e) }
            }
            XCTAssertGreaterThan(fractional.count, 3, name)
            // Not zero ablation: with most edges zeroed, receivers normalize a stream of nearly nothing, where a
            // coefficient a hair below 1 changes the result.
            for ablation in [Ablation.resample, .mean] {
                let label = "\(name) \(ablation)"
                let masked = try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff, ablation: ablation, chunkSize: 3)
                let sparse = try masked.gradient(mask), dense = try masked.gradient(almost)
                XCTAssertEqual(sparse.metric, dense.metric, accuracy: 1e-3 * max(1, abs(dense.metric)), label)
                let scale = max(dense.edges.map(abs).max() ?? 0, 1e-12)
                XCTAssertLessThanOrEqual(maxAbsDifference(sparse.edges, dense.edges), 1e-4 * scale, label)
                var wanted = [Bool](repeating: false, count: g.edgeCount)
                for e in fractional { wanted[e] = true }
                let some = try masked.gradient(mask, wanted: wanted)
                XCTAssertEqual(some.metric, sparse.metric, label)
                for e in fractional { XCTAssertEqual(some.edges[e], sparse.edges[e], accuracy: 1e-5 * scale, "\(label): \(g.edge(e).name)") }
                guard ablation == .resample else { continue }
                let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
                XCTAssertEqual(sparse.metric, experiment.evaluate(mask), accuracy: 1e-4 * max(1, abs(sparse.metric)), label)
                for e in fractional.prefix(6) {
                    XCTAssertEqual(Double(sparse.edges[e]), numericDerivative(experiment, mask, edge: e), accuracy: 2e-3 * Double(scale),
                                   "\(label) \(g.edge(e).name)")
                }
            }
            XCTAssertThrowsError(try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff).gradient(mask, wanted: [true]), name)
        }
    }
}

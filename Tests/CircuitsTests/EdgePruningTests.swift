import Circuits
import Kernels
import TestSupport
import Transformer
import XCTest

/// Learned edge masks (design §10) on the tiny fixtures and the planted model.
final class EdgePruningTests: XCTestCase {
    /// The gates find the planted copy circuit, trained on the KL or on the logit difference's gap: its two
    /// edges get the most open gates, and the circuit they make is faithful.
    func testRecoversThePlantedCircuit() throws {
        let model = AttributionTests.plantedModel(), pairs = AttributionTests.plantedPairs()
        let g = model.graph
        let planted = Set([Edge(.input, .head(layer: 0, head: 0, port: .v)), Edge(.head(layer: 0, head: 0), .logits)].map { g.index(of: $0)! })
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        for loss in [Metric.kl, .logitDiff] {
            let pruning = try EdgePruning(model: model, pairs: pairs, options: .init(targetEdges: 2, steps: 150, loss: loss))
            let scores = try pruning.run()
            let top = Set(Selection.topN(2).select(scores, graph: g))
            XCTAssertEqual(top, planted, "\(loss): most open gates: \(Selection.topN(6).select(scores, graph: g).map { "\(g.edge($0).name) \(scores[$0])" })")
            XCTAssertEqual(pruning.expectedEdges, 2, accuracy: 0.01, "the projection should hold the expected open gates at the target")
            XCTAssertEqual(experiment.evaluate(circuit: g.pruned(top)).faithfulness, 1, accuracy: 0.05, "\(loss)")
        }
    }

    /// ∂L/∂log a through the hard concrete against central differences with the same gate noise, for
    /// the KL and for the logit difference's squared gap on a minibatch of two of the three pairs.
    func testGateGradientMatchesFiniteDifferences() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        for (loss, perStep) in [(Metric.kl, 32), (.logitDiff, 2)] {
            let pruning = try EdgePruning(model: model, pairs: pairs, options: .init(
                targetEdges: 20, steps: 1, initialLogAlpha: 0.5, chunkSize: 1, pairsPerStep: perStep, loss: loss))
            let base = pruning.state.logAlpha
            let (value, analytic) = try pruning.lossGradient(step: 3)
            XCTAssertGreaterThan(value, 0, "\(loss)")
            let scale = Double(analytic.map(abs).max()!)
            XCTAssertGreaterThan(scale, 0)
            // Edges whose gates are inside (0, 1) at this step have a nonzero gradient; check those.
            let checked = analytic.indices.filter { analytic[$0] != 0 }.prefix(12)
            XCTAssertGreaterThan(checked.count, 5)
            for e in checked {
                func lossAt(_ h: Float) throws -> Double {
                    var shifted = base
                    shifted[e] += h
                    return try pruning.lossGradient(step: 3, logAlpha: shifted).loss
                }
                let h: Float = 1e-2
                let numeric = (try lossAt(h) - lossAt(-h)) / (2 * Double(h))
                XCTAssertEqual(Double(analytic[e]), numeric, accuracy: 3e-3 * scale, "\(loss) \(model.graph.edge(e).name)")
            }
        }
    }

    /// The same seed gives the same gates; a run resumed from a saved state ends where the uninterrupted one does
    /// (minibatches of two of the three pairs, so the resumed steps must take the same chunks).
    func testDeterministicAndResumable() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let options = EdgePruning.Options(targetEdges: 15, steps: 12, seed: 5, chunkSize: 1, pairsPerStep: 2)
        let first = try EdgePruning(model: model, pairs: pairs, options: options).run()
        var saved: EdgePruning.State?
        let second = try EdgePruning(model: model, pairs: pairs, options: options).run(checkpoint: { state in if state.step == 5 { saved = state } })
        XCTAssertEqual(first, second)
        let data = try JSONEncoder().encode(try XCTUnwrap(saved))
        let resumed = try EdgePruning(model: model, pairs: pairs, options: options,
                                      resume: JSONDecoder().decode(EdgePruning.State.self, from: data)).run()
        XCTAssertEqual(resumed, first)
        XCTAssertThrowsError(try EdgePruning(model: model, pairs: pairs, ablation: .zero, options: options,
                                             resume: JSONDecoder().decode(EdgePruning.State.self, from: data))) { error in
            XCTAssertTrue("\(error)".contains("saved by a run with ablation 'resample'"), "\(error)")
        }
        var other = options
        other.seed = 6
        XCTAssertNotEqual(try EdgePruning(model: model, pairs: pairs, options: other).run(), first, "another seed should draw other noise")
    }

    /// Every step ends with the expected open gates at that step's target, the gates' order aside from the
    /// step unchanged by the projection; with pairs per step, steps take the chunks in turn.
    func testExpectedGatesFollowTheTargetAndMinibatchesTakeChunksInTurn() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let pruning = try EdgePruning(model: model, pairs: pairs, options: .init(targetEdges: 10, steps: 6, warmup: 0.5, chunkSize: 2))
        var targets: [Double] = []
        _ = try pruning.run(progress: { targets.append($0.target) })
        XCTAssertEqual(targets.count, 6)
        XCTAssertEqual(targets.last, 10)
        XCTAssertEqual(pruning.expectedEdges, 10, accuracy: 0.01)
        XCTAssertEqual(targets, targets.sorted(by: >), "the target falls, then holds")
        let before = pruning.state.logAlpha
        pruning.project(to: 4)
        XCTAssertEqual(pruning.expectedEdges, 4, accuracy: 0.01)
        let shift = pruning.state.logAlpha[0] - before[0]
        for e in before.indices { XCTAssertEqual(pruning.state.logAlpha[e] - before[e], shift, accuracy: 1e-4) }

        XCTAssertEqual(pairs.count, 3)
        let minibatch = try EdgePruning(model: model, pairs: pairs, options: .init(targetEdges: 10, steps: 6, chunkSize: 1, pairsPerStep: 2))
        XCTAssertEqual(minibatch.chunks(step: 0), [0, 1])
        XCTAssertEqual(minibatch.chunks(step: 1), [2, 0])
        let whole = try EdgePruning(model: model, pairs: pairs, options: .init(targetEdges: 10, steps: 6, chunkSize: 1, pairsPerStep: 3))
        XCTAssertNil(whole.chunks(step: 0))
        XCTAssertThrowsError(try EdgePruning(model: model, pairs: pairs, options: .init(targetEdges: 10, pairsPerStep: 0)))
    }

    /// Saved states that do not fit the model, or contradict themselves, are refused with a reason.
    func testInconsistentStatesAreRefused() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let options = EdgePruning.Options(targetEdges: 15, steps: 4)
        var saved: EdgePruning.State?
        _ = try EdgePruning(model: model, pairs: pairs, options: options).run(checkpoint: { saved = $0 })
        let good = try XCTUnwrap(saved)
        var foreign = good
        foreign.logAlpha.removeLast()
        var beyond = good
        beyond.step = 9
        var target = good
        target.options.targetEdges = model.graph.edgeCount + 1
        for (state, reason) in [(foreign, "graph"), (beyond, "step 9 of 4"), (target, "outside")] {
            XCTAssertThrowsError(try EdgePruning(model: model, pairs: pairs, options: options, resume: state)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(reason) in: \(error)")
            }
        }
    }
}

import Circuits
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// Runs continuing from each pair's shared prefix against the same runs over whole prompts.
final class SharedPrefixTests: XCTestCase {
    /// The reference's pairs made to share prefixes: pair i keeps the clean prompt's first tokens and
    /// takes its last `i % 4` tokens (changed where equal) from the reference's corrupted prompt, so
    /// prefixes cover everything but 0–3 tokens, and pair 0 is its own corruption.
    private func sharedPrefixPairs(_ model: TransformerModel, _ reference: PairBatch) -> PairBatch {
        let corrupt = zip(reference.clean, reference.corrupt).enumerated().map { i, pair in
            let (clean, other) = pair, changed = min(i % 4, clean.count)
            return Array(clean.dropLast(changed)) + (clean.count - changed..<clean.count).map { p in
                other[p] == clean[p] ? (other[p] + 1) % model.config.vocabularySize : other[p]
            }
        }
        return PairBatch(clean: reference.clean, corrupt: corrupt, correct: reference.correct, incorrect: reference.incorrect)
    }

    /// A run continuing from a prefix computes the whole run's senders, residual stream and logits
    /// at the rows after the prefix.
    func testContinuedRunEqualsTheWholeRunAfterThePrefix() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, reference) = try tinyFixture(name)
            let prompts = reference.clean, starts = prompts.indices.map { [0, 1, 3, 5][$0 % 4] }
            let cache = try PrefixCache(model: model, prefixes: zip(prompts, starts).map { Array($0.prefix($1)) })
            let continued = try model.forward(zip(prompts, starts).map { Array($0.dropFirst($1)) }, captureSenders: true,
                                              captureResiduals: true, prefix: cache)
            let whole = try model.forward(prompts, captureSenders: true, captureResiduals: true)
            XCTAssertEqual(continued.layout.starts, starts)
            let d = model.config.dModel
            let kept = prompts.indices.flatMap { b in whole.layout.offsets[b] + starts[b]..<whole.layout.offsets[b] + prompts[b].count }
            func gathered(_ buffer: FloatBuffer, planes: Int) -> [Float] {
                (0..<planes).flatMap { s in kept.flatMap { r in (0..<d).map { buffer[(s * whole.layout.rows + r) * d + $0] } } }
            }
            let senders = model.graph.senders.count, points = 2 * model.config.layers + 1
            let scale = whole.senders!.array.map(abs).max()!
            XCTAssertLessThanOrEqual(maxAbsDifference(continued.senders!.array, gathered(whole.senders!, planes: senders)), 1e-5 * scale, name)
            XCTAssertLessThanOrEqual(maxAbsDifference(continued.residuals!.array, gathered(whole.residuals!, planes: points)), 1e-5 * scale, name)
            XCTAssertLessThanOrEqual(maxAbsDifference(continued.logits.array, whole.logits.array), 1e-4, name)
        }
    }

    /// EAP and EAP-IG continuing from shared prefixes give the scores of whole-prompt runs, and those
    /// are ∂M/∂α at α = 0 from the masked gradient (which runs whole prompts); the clean and corrupted
    /// runs agree exactly, bit for bit, on the prefixes left out.
    func testAttributionContinuingFromSharedPrefixesKeepsTheScores() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, reference) = try tinyFixture(name)
            let pairs = sharedPrefixPairs(model, reference)
            // Pair i differs in its last i % 4 tokens; an unchanged pair still runs its last token.
            XCTAssertEqual(pairs.sharedPrefixLengths, pairs.clean.indices.map { pairs.clean[$0].count - max($0 % 4, 1) }, name)
            let clean = try model.forward(pairs.clean, captureSenders: true), corrupted = try model.forward(pairs.corrupt, captureSenders: true)
            let d = model.config.dModel, plane = clean.layout.rows * d
            for (b, (a, c)) in zip(pairs.clean, pairs.corrupt).enumerated() {
                let shared = a.indices.first { a[$0] != c[$0] } ?? a.count
                for s in 0..<model.graph.senders.count {
                    let from = s * plane + clean.layout.offsets[b] * d
                    XCTAssertTrue((from..<from + shared * d).allSatisfy { clean.senders![$0] == corrupted.senders![$0] },
                                  "\(name): sender \(s) of pair \(b) differs before its first differing token")
                }
            }
            for steps in [nil, 3] as [Int?] {
                let label = "\(name), steps \(steps.map(String.init) ?? "none")"
                let continued = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: steps, chunkSize: 3)
                let whole = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: steps, chunkSize: 3,
                                                       reusesSharedPrefixes: false)
                let largest = whole.map { abs($0) }.max()!
                XCTAssertGreaterThan(largest, 0, label)
                XCTAssertLessThanOrEqual(maxAbsDifference(continued, whole), 1e-5 * largest, label)
                if steps == nil {
                    let masked = try MaskedGradient(model: model, pairs: pairs, metric: .logitDiff, reusesSharedPrefixes: false)
                        .gradient(EdgeMask(graph: model.graph)).edges
                    XCTAssertLessThanOrEqual(maxAbsDifference(continued, masked), 1e-5 * largest, label)
                }
            }
        }
    }

    /// The masked gradient (learned masks, search, attributed ACDC) continuing from shared prefixes
    /// equals the one over whole prompts, under masks away from α = 0.
    func testMaskedGradientContinuingFromSharedPrefixesKeepsTheGradient() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, reference) = try tinyFixture(name)
            let pairs = sharedPrefixPairs(model, reference)
            var rng = SeededRandom(seed: 13)
            var mask = EdgeMask(graph: model.graph)
            for e in 0..<model.graph.edgeCount { mask[e] = rng.nextFloat() }
            for metric in [Metric.logitDiff, .kl] {
                let continued = try MaskedGradient(model: model, pairs: pairs, metric: metric, chunkSize: 3).gradient(mask)
                let whole = try MaskedGradient(model: model, pairs: pairs, metric: metric, chunkSize: 3, reusesSharedPrefixes: false).gradient(mask)
                let largest = whole.edges.map { abs($0) }.max()!
                XCTAssertGreaterThan(largest, 0, name)
                XCTAssertLessThanOrEqual(maxAbsDifference(continued.edges, whole.edges), 1e-5 * largest, "\(name) \(metric.rawValue)")
                XCTAssertEqual(continued.metric, whole.metric, accuracy: 1e-5 * max(1, abs(whole.metric)), "\(name) \(metric.rawValue)")
            }
        }
    }

    /// Patched runs continuing from shared prefixes give the logits of whole-prompt patched runs, for
    /// batches of random masks, and so does an experiment made of EAP's continued runs.
    func testPatchedRunsContinuingFromSharedPrefixesKeepTheLogits() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, reference) = try tinyFixture(name)
            let pairs = sharedPrefixPairs(model, reference)
            var rng = SeededRandom(seed: 12)
            let masks = (0..<3).map { k in
                var mask = EdgeMask(graph: model.graph)
                for e in 0..<model.graph.edgeCount { mask[e] = rng.nextFloat() < [0.1, 0.5, 0.9][k] ? 1 : 0 }
                return mask
            }
            let continued = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt)
            let whole = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt, reusesSharedPrefixes: false)
            XCTAssertLessThan(continued.layout.rows, whole.layout.rows, name)
            XCTAssertLessThanOrEqual(maxAbsDifference(continued.run(masks).array, whole.run(masks).array), 1e-4, name)
            for mask in masks {
                XCTAssertLessThanOrEqual(maxAbsDifference(continued.run(mask).array, whole.run(mask).array), 1e-4, name)
            }

            let setup = DiscoverySetup(model: model, pairs: pairs, source: "fixture", metric: .logitDiff, ablation: .resample) { _ in }
            _ = try EAPMethod(steps: nil, chunkSize: 3).scores(setup, progress: nil)
            let shared = try setup.experiment()
            let own = try Experiment(model: model, pairs: pairs, metric: .logitDiff, ablation: .resample)
            for (a, b) in zip(shared.evaluate(masks), own.evaluate(masks)) { XCTAssertEqual(a, b, accuracy: 1e-4, name) }
        }
    }
}

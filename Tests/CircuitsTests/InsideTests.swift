import Circuits
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// The logit lens, direct logit attribution, attention patterns and causal tracing on the tiny fixtures.
final class InsideTests: XCTestCase {
    /// At the last point of the stream the lens reads exactly the model's logits, at every position.
    func testLensAtTheLastPointIsTheModelsLogits() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let pass = try model.forward(pairs.clean, readout: .all, captureResiduals: true)
            let last = ResidualPoint.all(layers: model.config.layers).last!
            XCTAssertEqual(last.name, "blocks.\(model.config.layers - 1).hook_resid_post")
            let lens = LogitLens.logits(model: model, pass: pass, point: last, rows: Array(0..<pass.layout.rows))
            XCTAssertEqual(lens.array, pass.logits.array, name)

            let readings = try LogitLens.read(model: model, prompts: pairs.clean, correct: pairs.correct, incorrect: pairs.incorrect,
                                              positions: .last, top: 3)
            let logits = try model.forward(pairs.clean).logits, vocab = model.config.vocabularySize
            for (b, prompt) in readings.enumerated() {
                XCTAssertEqual(prompt.count, 2 * model.config.layers + 1)
                let final = try XCTUnwrap(prompt.last)
                let row = Array(logits.array[(b * vocab)..<((b + 1) * vocab)])
                let best = row.indices.max { row[$0] < row[$1] }!
                XCTAssertEqual(final.top.first?.id, best)
                XCTAssertEqual(final.correct.first?.logit, row[pairs.correct[b][0]])
                XCTAssertEqual(final.correct.first?.rank, 1 + row.filter { $0 > row[pairs.correct[b][0]] }.count)
                XCTAssertEqual(final.top.map(\.rank), [1, 2, 3])
            }
        }
    }

    /// Between the layers the lens matches the final RMSNorm and unembedding applied by hand to the
    /// PyTorch reference's sender outputs (Llama has no biases: the stream is their sum).
    func testLensBetweenLayersMatchesTheReferenceStream() throws {
        let (model, reference, pairs) = try tinyFixture("tiny-llama")
        let pass = try model.forward(pairs.clean, readout: .none, captureResiduals: true)
        let layout = pass.layout, c = model.config, d = c.dModel, rows = Array(0..<layout.rows)
        // blocks.1.hook_resid_pre = input + the heads of layer 0 + m0.
        var stream = try reference.packed("sender.input", layout: layout)
        for sender in (0..<c.heads).map({ "a0.h\($0)" }) + ["m0"] {
            for (i, x) in try reference.packed("sender.\(sender)", layout: layout).enumerated() { stream[i] += x }
        }
        let lens = LogitLens.logits(model: model, pass: pass, point: .pre(1, layers: c.layers), rows: rows).array
        var expected: [Float] = []
        for r in rows {
            let x = stream[(r * d)..<((r + 1) * d)]
            let rms = (x.reduce(0) { $0 + $1 * $1 } / Float(d) + c.normEps).squareRoot()
            let normed = x.enumerated().map { $1 / rms * model.finalNormWeight[$0] }
            for token in 0..<c.vocabularySize {
                expected.append(normed.enumerated().reduce(0) { $0 + $1.element * model.unembedding[token * d + $1.offset] })
            }
        }
        XCTAssertLessThanOrEqual(relativeError(lens, reference: expected), 1e-4)
    }

    /// Every sender's direct term, the attention biases and the final norm's bias add up to the logit
    /// difference (LayerNorm with biases in GPT-2, RMSNorm in Llama).
    func testDirectLogitAttributionSumsToTheLogitDifference() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let dla = try DirectLogitAttribution(model: model, pairs: pairs, chunkSize: 2)
            let logits = try model.forward(pairs.clean).logits
            let expected = Metric.logitDiff.evaluate(logits: logits.pointer, vocab: model.config.vocabularySize,
                                                     targets: MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect)).mean
            XCTAssertEqual(dla.logitDiff, expected, accuracy: 1e-5 * max(1, abs(expected)), name)
            XCTAssertEqual(dla.total, expected, accuracy: 1e-4 * max(1, abs(expected)), name)
            XCTAssertEqual(dla.contributions.count, model.graph.senders.count)
            if name == "tiny-gpt2" {
                XCTAssertNotEqual(dla.attentionBias, 0)
                XCTAssertNotEqual(dla.normBias, 0)
            } else {
                XCTAssertEqual(dla.attentionBias, 0)
                XCTAssertEqual(dla.normBias, 0)
            }
        }
    }

    /// Patterns are causal distributions and match softmax(q·k/√d) recomputed by hand from the block's
    /// input (GPT-2: LayerNorm and the query/key weights, no rotary embedding to share with the kernel).
    func testAttentionPatternsMatchANaiveRecomputation() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let c = model.config, d = c.dModel, dh = c.headDim
        let heads: [Sender] = [.head(layer: 0, head: 1), .head(layer: 1, head: 3)]
        let prompts = Array(pairs.clean.prefix(2))
        let patterns = try AttentionPatterns.compute(model: model, prompts: prompts, heads: heads)
        let pass = try model.forward(prompts, readout: .none, keepActivations: true)
        for (b, prompt) in prompts.enumerated() {
            let n = prompt.count, r0 = pass.layout.offsets[b]
            for (i, head) in heads.enumerated() {
                guard case .head(let l, let h) = head else { continue }
                let w = model.blocks[l], pattern = patterns[b][i]
                XCTAssertEqual(pattern.count, n * n)
                /// Head h's projection `weight · LayerNorm(x) + bias` of stream row r.
                func project(_ weight: FloatBuffer, _ bias: FloatBuffer?, row r: Int) -> [Float] {
                    let x = Array(UnsafeBufferPointer(start: pass.activations(l).residPre.pointer + (r0 + r) * d, count: d))
                    let mean = x.reduce(0, +) / Float(d)
                    let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(d)
                    let normed = x.enumerated().map { ($1 - mean) / (variance + c.normEps).squareRoot() * w.norm1Weight[$0] + w.norm1Bias![$0] }
                    return (0..<dh).map { j in
                        normed.enumerated().reduce(bias?[h * dh + j] ?? 0) { $0 + $1.element * weight[(h * dh + j) * d + $1.offset] }
                    }
                }
                for t in 0..<n {
                    let q = project(w.wq, w.bq, row: t)
                    let scores = (0...t).map { u in zip(q, project(w.wk, w.bk, row: u)).reduce(0) { $0 + $1.0 * $1.1 } / Float(dh).squareRoot() }
                    let top = scores.max()!, total = scores.reduce(0) { $0 + exp($1 - top) }
                    for u in 0..<n {
                        let expected = u <= t ? exp(scores[u] - top) / total : 0
                        XCTAssertEqual(pattern[t * n + u], expected, accuracy: 1e-5, "\(head.name) prompt \(b) row \(t) column \(u)")
                    }
                    XCTAssertEqual(pattern[(t * n)..<(t * n + n)].reduce(0, +), 1, accuracy: 1e-5)
                }
            }
        }
        XCTAssertThrowsError(try AttentionPatterns.compute(model: model, prompts: prompts, heads: [.head(layer: 2, head: 0)]))
        XCTAssertThrowsError(try AttentionPatterns.compute(model: model, prompts: prompts, heads: [.mlp(layer: 0)]))
    }

    /// Every head's pattern on every prompt, all prompts run as one packed batch, matches HF
    /// transformers' `output_attentions` (each prompt run alone) from `generate_attention.py`.
    func testAttentionPatternsMatchHFOutputAttentions() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let model = try TransformerModel.load(contentsOf: Fixtures.url(name))
            let reference = try ReferenceFile("attention-\(name)")
            let prompts: [[Int]] = try reference.json("prompts")
            let c = model.config
            let heads = (0..<c.layers).flatMap { l in (0..<c.heads).map { Sender.head(layer: l, head: $0) } }
            let patterns = try AttentionPatterns.compute(model: model, prompts: prompts, heads: heads)
            XCTAssertEqual(patterns.count, prompts.count)
            for (p, prompt) in prompts.enumerated() {
                // [layers, heads, n, n]: head i of `heads` is block i of n² values.
                let expected = try reference.tensor("attention.p\(p)")
                XCTAssertEqual(expected.count, heads.count * prompt.count * prompt.count)
                XCTAssertLessThanOrEqual(maxAbsDifference(patterns[p].joined(), expected), 1e-5, "\(name) prompt \(p)")
            }
        }
    }

    /// Restoring every position entering the first or the last block gives the clean metric back,
    /// restoring none leaves the corrupted one; the grid covers every block and position.
    func testCausalTraceFullAndEmptyRestorations() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            for metric in [Metric.logitDiff, .kl] {
                let trace = try CausalTrace(model: model, pairs: pairs, metric: metric)
                let everywhere = Array(0..<pairs.clean.map(\.count).max()!)
                for layer in [0, model.config.layers - 1] {
                    let values = trace.metrics(layer: layer, restoring: [everywhere, [], everywhere])
                    XCTAssertEqual(values[0], trace.cleanMetric, accuracy: 1e-4, "\(name) \(metric) layer \(layer) all")
                    XCTAssertEqual(values[1], trace.corruptMetric, accuracy: 1e-4, "\(name) \(metric) layer \(layer) none")
                    XCTAssertEqual(values[2], values[0], accuracy: 1e-6)
                    XCTAssertEqual(trace.recovery(of: values[0]), 1, accuracy: 1e-3)
                }
                var reports = 0
                let grid = trace.grid(batchRows: 20) { done, total in
                    reports += 1
                    XCTAssertLessThanOrEqual(done, total)
                }
                XCTAssertEqual(grid.count, model.config.layers * everywhere.count)
                XCTAssertGreaterThan(reports, 1)
                XCTAssertTrue(grid.allSatisfy(\.isFinite))
            }
        }
    }

    /// The heatmap draws one cell per finite value and escapes its labels.
    func testHeatmapDrawsEveryCellAndEscapesLabels() {
        let map = Heatmap(title: "a < b & c", rowLabels: ["\"x\"", "y"], columnLabels: ["<s>", "t", "u"], rowAxis: "rows",
                          columnAxis: "columns", values: [0, 0.5, 1, .nan, 2, -1], range: 0...1)
        let svg = map.svg()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<title>").count - 1, 5)
        XCTAssertTrue(svg.contains("a &lt; b &amp; c"))
        XCTAssertTrue(svg.contains("&lt;s&gt;"))
        XCTAssertTrue(svg.contains("&quot;x&quot;"))
        XCTAssertFalse(svg.contains("<s>"))
    }
}

import Kernels
import TestSupport
import Transformer
import XCTest

/// The backward pass against central finite differences of the forward pass, on random tiny models.
final class BackwardFiniteDifferenceTests: XCTestCase {
    /// The metric when one receiver's input is replaced by `residual + epsilon · direction`.
    private func metric(
        _ model: TransformerModel, _ batch: [[Int]], _ metric: Metric, _ targets: MetricTargets,
        receiver: Receiver, direction: FloatBuffer, epsilon: Float
    ) throws -> Double {
        let c = model.config
        let layout = SequenceLayout(lengths: batch.map(\.count))
        let plane = layout.rows * c.dModel
        let acts = LayerActivations(config: c, layout: layout)
        model.embed(acts.residPre.pointer, tokens: batch.flatMap { $0 }, layout: layout)
        let mlpOut = FloatBuffer(count: plane), shifted = FloatBuffer(count: plane), final = FloatBuffer(count: plane)
        func shift(_ base: UnsafePointer<Float>) -> UnsafePointer<Float> {
            for i in 0..<plane { shifted[i] = base[i] + epsilon * direction[i] }
            return UnsafePointer(shifted.pointer)
        }
        for l in 0..<c.layers {
            var inputs: ReceiverInputs?
            if case .head(let rl, let h, let port) = receiver, rl == l {
                var replaced = ReceiverInputs(heads: c.heads)
                let x = shift(acts.residPre.pointer)
                switch port {
                case .q: replaced.q[h] = x
                case .k: replaced.k[h] = x
                case .v: replaced.v[h] = x
                }
                inputs = replaced
            }
            model.attentionForward(layer: l, acts, layout: layout, inputs: inputs)
            let mlpInput = receiver == .mlp(layer: l) ? shift(acts.residMid.pointer) : nil
            let post = l == c.layers - 1 ? final.pointer : acts.residPre.pointer
            model.mlpForward(layer: l, acts, layout: layout, input: mlpInput, mlpOut: mlpOut.pointer, residPost: post)
        }
        let readout = UnembeddingActivations(config: c, rows: batch.count)
        let resid = receiver == .logits ? shift(final.pointer) : UnsafePointer(final.pointer)
        model.logitsForward(readout, resid: resid, rows: layout.lastRows)
        return metric.evaluate(logits: readout.logits.pointer, vocab: c.vocabularySize, targets: targets).mean
    }

    private func check(_ model: TransformerModel, receivers: [Receiver], file: StaticString = #filePath, line: UInt = #line) throws {
        let c = model.config
        let batch = RandomModel.batch(lengths: [5, 3, 6], vocab: c.vocabularySize, seed: 7)
        let other = RandomModel.batch(lengths: [5, 3, 6], vocab: c.vocabularySize, seed: 8)
        let reference = MetricTargets.probabilities(try model.forward(other).logits, vocab: c.vocabularySize)
        let targets = MetricTargets(correct: [[1], [2, 3], [4]], incorrect: [[5], [6], [7, 8]], reference: reference)
        let plane = batch.map(\.count).reduce(0, +) * c.dModel
        var rng = SeededRandom(seed: 3)
        let direction = RandomModel.buffer(plane, &rng, spread: 1)

        for metric in Metric.allCases {
            let pass = try model.forward(batch, keepActivations: true)
            let dLogits = FloatBuffer(count: pass.logits.count)
            _ = metric.evaluate(logits: pass.logits.pointer, vocab: c.vocabularySize, targets: targets, gradient: dLogits.pointer)
            let analytic = model.receiverGradients(pass, dLogits: dLogits.pointer).gradients.mapValues {
                Double(dot($0, direction.pointer, plane))
            }
            for r in receivers {
                let eps: Float = 1e-2
                let plus = try self.metric(model, batch, metric, targets, receiver: r, direction: direction, epsilon: eps)
                let minus = try self.metric(model, batch, metric, targets, receiver: r, direction: direction, epsilon: -eps)
                let numeric = (plus - minus) / (2 * Double(eps))
                let a = try XCTUnwrap(analytic[r], "no gradient delivered for \(r.name)", file: file, line: line)
                XCTAssertEqual(a, numeric, accuracy: 1e-4 + 1e-3 * abs(numeric),
                               "\(metric.rawValue) \(r.name): backward \(a), finite difference \(numeric)", file: file, line: line)
            }
        }
    }

    func testGPT2ReceiverGradientsMatchFiniteDifferences() throws {
        let model = RandomModel.model(RandomModel.gpt2Config())
        try check(model, receivers: [.logits, .mlp(layer: 1), .mlp(layer: 0), .head(layer: 1, head: 2, port: .q),
                                     .head(layer: 0, head: 0, port: .k), .head(layer: 1, head: 3, port: .v)])
    }

    func testLlamaReceiverGradientsMatchFiniteDifferences() throws {
        for style in [RoPEStyle.interleaved, .halfSplit] {
            let model = RandomModel.model(RandomModel.llamaConfig(style: style))
            try check(model, receivers: [.logits, .mlp(layer: 0), .head(layer: 1, head: 1, port: .q),
                                         .head(layer: 1, head: 1, port: .k), .head(layer: 0, head: 2, port: .k),
                                         .head(layer: 0, head: 3, port: .v), .head(layer: 1, head: 0, port: .v)])
        }
    }

    /// A batch of 69 rows (receiver gradients are delivered in chunks of 64 rows, the last one
    /// partial) gets, for every example, 1/batch of the gradients that example gets alone.
    func testReceiverGradientsOfALongBatchMatchEachExampleAlone() throws {
        let model = RandomModel.model(RandomModel.llamaConfig())
        let c = model.config
        let batch = RandomModel.batch(lengths: [30, 8, 31], vocab: c.vocabularySize, seed: 5)
        let correct = [[1], [2], [3]], incorrect = [[4], [5], [6]]
        func gradients(_ examples: [[Int]], _ targets: MetricTargets) throws -> [Receiver: [Float]] {
            let pass = try model.forward(examples, keepActivations: true)
            let dLogits = FloatBuffer(count: pass.logits.count)
            _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: c.vocabularySize, targets: targets, gradient: dLogits.pointer)
            return model.receiverGradients(pass, dLogits: dLogits.pointer).gradients
        }
        let together = try gradients(batch, MetricTargets(correct: correct, incorrect: incorrect))
        XCTAssertEqual(together.count, 1 + c.layers * (3 * c.heads + 1))
        var row0 = 0
        for (b, example) in batch.enumerated() {
            let alone = try gradients([example], MetricTargets(correct: [correct[b]], incorrect: [incorrect[b]]))
            let span = row0 * c.dModel..<(row0 + example.count) * c.dModel
            for (r, g) in alone {
                let scaled = together[r]![span].map { $0 * Float(batch.count) }
                let scale = g.map { abs($0) }.max()!
                XCTAssertGreaterThan(scale, 0, "\(r.name) has a gradient")
                for (x, y) in zip(scaled, g) { XCTAssertEqual(x, y, accuracy: 1e-5 * scale, "example \(b), \(r.name)") }
            }
            row0 += example.count
        }
    }

    /// The sum of every receiver's gradient in a block equals the gradient of that block's input.
    func testReceiverGradientsSumToResidualGradient() throws {
        let model = RandomModel.model(RandomModel.llamaConfig(layers: 1))
        let c = model.config
        let batch = RandomModel.batch(lengths: [4, 6], vocab: c.vocabularySize, seed: 2)
        let pass = try model.forward(batch, keepActivations: true)
        let dLogits = FloatBuffer(count: pass.logits.count)
        let targets = MetricTargets(correct: [[1], [2]], incorrect: [[3], [4]])
        _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: c.vocabularySize, targets: targets, gradient: dLogits.pointer)
        let plane = 10 * c.dModel
        let total = FloatBuffer(count: plane)
        let (gradients, dInput) = model.receiverGradients(pass, dLogits: dLogits.pointer)
        for g in gradients.values { axpy(total.pointer, 1, g, plane) }
        for i in 0..<plane { XCTAssertEqual(total[i], dInput[i], accuracy: 1e-5 * max(1, abs(dInput[i]))) }
    }
}

import Foundation
import Kernels
import Transformer

/// Causal tracing: the corrupted run with the clean residual stream restored at chosen positions
/// entering one block (`blocks.l.hook_resid_pre`), and the metric that run gives.
///
/// The clean and corrupted runs are made once; a traced run starts from the corrupted stream entering
/// the block with the chosen rows replaced by the clean ones, and runs the blocks from there. Many
/// traced runs go through the model side by side in one pass.
public final class CausalTrace {
    public let model: TransformerModel
    public let pairs: PairBatch
    public let metric: Metric
    /// The metric on the clean prompts.
    public let cleanMetric: Double
    /// The metric on the corrupted prompts.
    public let corruptMetric: Double
    /// Packing of one copy of the batch.
    private let layout: SequenceLayout
    /// `[2·layers + 1, T, d]` the clean run's residual stream.
    private let clean: FloatBuffer
    /// `[2·layers + 1, T, d]` the corrupted run's residual stream.
    private let corrupt: FloatBuffer
    private let targets: MetricTargets
    /// The pass of the last batched run and its number of copies of the batch, reused while that stays the same.
    private var workspace: (copies: Int, pass: ForwardPass)?

    /// Runs the clean and corrupted prompts once and measures both.
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric) throws {
        try pairs.validate()
        self.model = model
        self.pairs = pairs
        self.metric = metric
        let vocab = model.config.vocabularySize
        let cleanPass = try model.forward(pairs.clean, captureResiduals: true)
        let corruptPass = try model.forward(pairs.corrupt, captureResiduals: true)
        layout = cleanPass.layout
        clean = cleanPass.residuals!
        corrupt = corruptPass.residuals!
        targets = MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect,
                                reference: MetricTargets.probabilities(cleanPass.logits, vocab: vocab))
        cleanMetric = metric.evaluate(logits: cleanPass.logits.pointer, vocab: vocab, targets: targets).mean
        corruptMetric = metric.evaluate(logits: corruptPass.logits.pointer, vocab: vocab, targets: targets).mean
    }

    /// The metric (averaged over pairs) of one corrupted run per entry of `restored`, each with the
    /// clean stream entering block `layer` restored at those positions of every pair (positions past
    /// a pair's end are ignored); all in one batched pass.
    public func metrics(layer: Int, restoring restored: [[Int]]) -> [Double] {
        precondition(layer >= 0 && layer < model.config.layers, "layer \(layer) outside the model's \(model.config.layers)")
        guard !restored.isEmpty else { return [] }
        let d = model.config.dModel, plane = layout.rows * d, vocab = model.config.vocabularySize, copies = restored.count
        if workspace?.copies != copies {
            workspace = nil  // frees the previous buffers before allocating new ones
            let copied = SequenceLayout(lengths: Array(repeatElement(layout.lengths, count: copies).joined()))
            workspace = (copies, ForwardPass(model: model, layout: copied, readout: .last))
        }
        let pass = workspace!.pass
        let point = ResidualPoint.pre(layer, layers: model.config.layers).index
        let entry = pass.entry(layer)
        for (k, positions) in restored.enumerated() {
            let copy = entry + k * plane
            copy.update(from: corrupt.pointer + point * plane, count: plane)
            for b in 0..<layout.count {
                for p in positions where p < layout.lengths[b] {
                    let row = (layout.offsets[b] + p) * d
                    (copy + row).update(from: clean.pointer + point * plane + row, count: d)
                }
            }
        }
        model.run(pass, from: layer)
        return (0..<copies).map { k in
            metric.evaluate(logits: pass.logits.pointer + k * layout.count * vocab, vocab: vocab, targets: targets).mean
        }
    }

    /// `(M − M_corrupt) / (M_clean − M_corrupt)`: 1 where a restoration gives back the clean metric, 0
    /// where it changes nothing.
    public func recovery(of value: Double) -> Double {
        (value - corruptMetric) / (cleanMetric - corruptMetric)
    }

    /// The metric's recovery for every block and every position of the longest prompt, restoring one
    /// position at a time: `[layers, maxLength]` row-major.
    ///
    /// - Parameters:
    ///   - batchRows: about how many rows of tokens one batched pass may hold
    ///   - progress: called after each pass with (runs done, runs in all)
    public func grid(batchRows: Int = 4096, progress: (Int, Int) -> Void = { _, _ in }) -> [Double] {
        let layers = model.config.layers, n = layout.maxLength
        let perPass = max(1, batchRows / layout.rows)
        var values: [Double] = []
        for l in 0..<layers {
            for start in stride(from: 0, to: n, by: perPass) {
                let positions = start..<min(start + perPass, n)
                values += metrics(layer: l, restoring: positions.map { [$0] }).map(recovery)
                progress(l * n + positions.upperBound, layers * n)
            }
        }
        return values
    }
}

import Foundation
import Kernels
import Transformer

/// Input attribution by integrated gradients: how much each position of a pair's clean prompt adds
/// to its metric, measured along the straight path from the corrupted prompt's input embeddings to
/// the clean prompt's.
///
/// For pair b with clean and corrupted embeddings x and x′ (`[n, d]`, the `input` sender), position
/// p gets `Σ_d (x − x′)[p, d] · mean_k ∂M_b/∂x[p, d]` at the points `x′ + t_k (x − x′)`,
/// `t_k = (k + ½) / steps` (the midpoint rule). The attributions of a pair add up to
/// `M_b(clean) − M_b(corrupt)` up to the rule's error, which shrinks as `1/steps²`; a position
/// where the two prompts have the same token gets exactly 0.
public struct InputAttribution: Sendable {
    public let metric: Metric
    /// Points on the path.
    public let steps: Int
    /// Per pair, one attribution per position of its prompt.
    public let attributions: [[Double]]
    /// Per pair, the metric on its clean prompt.
    public let cleanMetrics: [Double]
    /// Per pair, the metric on its corrupted prompt.
    public let corruptMetrics: [Double]

    /// Attributes the metric of every pair, running `batchSize` interpolated prompts per forward and
    /// backward pass.
    ///
    /// - Parameters:
    ///   - steps: points on the path from the corrupted to the clean embeddings
    ///   - batchSize: prompts per pass (each pair appears once per step)
    ///   - progress: called after each pass with (interpolated prompts done, in all)
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, steps: Int = 20, batchSize: Int = 32,
                progress: EdgeAttribution.Progress? = nil) throws {
        try pairs.validate()
        guard steps >= 1 else { throw ModelInputError("integrated gradients need at least one step, got \(steps)") }
        guard batchSize >= 1 else { throw ModelInputError("batch size must be at least 1, got \(batchSize)") }
        let d = model.config.dModel, vocab = model.config.vocabularySize
        let layout = SequenceLayout(lengths: pairs.clean.map(\.count))
        let clean = try model.embedding(pairs.clean), corrupt = try model.embedding(pairs.corrupt)  // [T, d]
        // The end points: each pair's metric, and the clean distribution `kl` compares against.
        let reference = FloatBuffer(uninitializedCount: pairs.count * vocab)  // [pairs, vocab]
        var cleanMetrics: [Double] = [], corruptMetrics: [Double] = []
        for start in stride(from: 0, to: pairs.count, by: batchSize) {
            let chunk = pairs.slice(start..<min(start + batchSize, pairs.count))
            let cleanLogits = try model.forward(chunk.clean).logits, corruptLogits = try model.forward(chunk.corrupt).logits
            let probabilities = MetricTargets.probabilities(cleanLogits, vocab: vocab)
            (reference.pointer + start * vocab).update(from: probabilities.pointer, count: probabilities.count)
            let targets = MetricTargets(correct: chunk.correct, incorrect: chunk.incorrect, reference: probabilities)
            cleanMetrics += metric.evaluate(logits: cleanLogits.pointer, vocab: vocab, targets: targets).values
            corruptMetrics += metric.evaluate(logits: corruptLogits.pointer, vocab: vocab, targets: targets).values
        }
        // Σ_k ∂M_b/∂x / steps at every row, accumulated over the (pair, step) prompts, packed in batches.
        let gradient = FloatBuffer(count: layout.rows * d)  // [T, d]
        let runs = (0..<steps).flatMap { k in pairs.clean.indices.map { (pair: $0, step: k) } }
        for start in stride(from: 0, to: runs.count, by: batchSize) {
            let batch = runs[start..<min(start + batchSize, runs.count)]
            let prompts = batch.map { pairs.clean[$0.pair] }
            let packed = SequenceLayout(lengths: prompts.map(\.count))
            let embedding = FloatBuffer(uninitializedCount: packed.rows * d)  // [rows, d]
            for (r, run) in batch.enumerated() {
                let from = layout.offsets[run.pair] * d
                interpolate(embedding.pointer + packed.offsets[r] * d, corrupt: corrupt.pointer + from, clean: clean.pointer + from,
                            t: (Float(run.step) + 0.5) / Float(steps), packed.lengths[r] * d)
            }
            let pass = try model.forward(prompts, keepActivations: true, inputEmbedding: embedding.pointer)
            let rows = FloatBuffer(uninitializedCount: batch.count * vocab)  // [runs, vocab] each run's clean distribution
            for (r, run) in batch.enumerated() { (rows.pointer + r * vocab).update(from: reference.pointer + run.pair * vocab, count: vocab) }
            let targets = MetricTargets(correct: batch.map { pairs.correct[$0.pair] }, incorrect: batch.map { pairs.incorrect[$0.pair] },
                                        reference: rows)
            // The metric's gradient is of the mean over the batch; rescaled, each run's is ∂M_b/∂logits / steps.
            let dLogits = FloatBuffer(count: pass.logits.count)  // [runs, vocab]
            _ = metric.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
            let scale = Float(batch.count) / Float(steps)
            for i in 0..<dLogits.count { dLogits[i] *= scale }
            let dInput = model.backward(pass, dLogits: dLogits.pointer) { _ in }  // [rows, d]
            for (r, run) in batch.enumerated() {
                axpy(gradient.pointer + layout.offsets[run.pair] * d, 1, dInput.pointer + packed.offsets[r] * d, packed.lengths[r] * d)
            }
            progress?(start + batch.count, runs.count)
        }
        attributions = pairs.clean.indices.map { b in
            (0..<layout.lengths[b]).map { p in
                let row = (layout.offsets[b] + p) * d
                return (0..<d).reduce(0.0) { sum, j in
                    sum + Double(clean[row + j] - corrupt[row + j]) * Double(gradient[row + j])
                }
            }
        }
        self.metric = metric
        self.steps = steps
        self.cleanMetrics = cleanMetrics
        self.corruptMetrics = corruptMetrics
    }

    /// Mean over pairs of the clean metric.
    public var cleanMetric: Double { cleanMetrics.reduce(0, +) / Double(cleanMetrics.count) }

    /// Mean over pairs of the corrupted metric.
    public var corruptMetric: Double { corruptMetrics.reduce(0, +) / Double(corruptMetrics.count) }

    /// Per pair, the sum of its attributions minus `M_b(clean) − M_b(corrupt)`: the path integral's error.
    public var completenessErrors: [Double] {
        attributions.indices.map { attributions[$0].reduce(0, +) - (cleanMetrics[$0] - corruptMetrics[$0]) }
    }

    /// The attributions of the pairs at indices `shown` as a token heatmap: a row per pair, a column
    /// per position, each cell showing `token(pair, position)` on a red–white–blue scale symmetric about 0.
    public func heatmap(pairs shown: [Int], title: String, token: (_ pair: Int, _ position: Int) -> String) -> Heatmap {
        let width = shown.map { attributions[$0].count }.max() ?? 0
        var values: [Double] = [], labels: [String] = []
        for b in shown {
            for p in 0..<width {
                let inside = p < attributions[b].count
                values.append(inside ? attributions[b][p] : .nan)
                labels.append(inside ? token(b, p) : "")
            }
        }
        let largest = max(values.filter { !$0.isNaN }.map(abs).max() ?? 0, .leastNormalMagnitude)
        return Heatmap(title: title, rowLabels: shown.map { "pair \($0 + 1)" }, columnLabels: (0..<width).map(String.init),
                       rowAxis: "pair", columnAxis: "position", values: values, range: -largest...largest, cellLabels: labels,
                       diverging: true)
    }
}

import Kernels
import Transformer

/// Direct logit attribution: how much each sender's output, read straight through the final norm
/// and the unembedding, adds to the clean logit difference at each pair's last token.
///
/// The final norm is linear once its scale is frozen at the clean run's value (and, for LayerNorm,
/// each term is centred), so the logit difference splits exactly into one term per sender plus the
/// attention output biases (which no sender carries) and the final norm's bias. Averaged over pairs.
public struct DirectLogitAttribution: Sendable {
    /// Every sender of the graph, in graph order.
    public let senders: [Sender]
    /// Per sender (same order), its mean direct effect on the logit difference.
    public let contributions: [Double]
    /// The attention output projections' biases (0 when the model has none).
    public let attentionBias: Double
    /// The final norm's bias (0 for RMSNorm).
    public let normBias: Double
    /// The clean logit difference (design §5), which the terms sum to.
    public let logitDiff: Double

    /// The sum of every term: the logit difference up to rounding.
    public var total: Double { contributions.reduce(0, +) + attentionBias + normBias }

    /// Runs the clean prompts of `pairs` in chunks of `chunkSize` and attributes their logit difference.
    public init(model: TransformerModel, pairs: PairBatch, chunkSize: Int = 16) throws {
        try pairs.validate()
        let c = model.config, d = c.dModel, g = model.graph, vocab = c.vocabularySize
        var sums = [Double](repeating: 0, count: g.senders.count), biasSum = 0.0, normSum = 0.0, diffSum = 0.0
        // Σ_l b_O: what the attention biases add to every row of the stream.
        let attentionBiases = FloatBuffer(count: d)  // [d]
        for w in model.blocks { if let bo = w.bo { axpy(attentionBiases.pointer, 1, bo.pointer, d) } }
        let direction = FloatBuffer(count: d)  // [d] W_U[correct] − W_U[incorrect], through the norm's weight
        for start in stride(from: 0, to: pairs.count, by: chunkSize) {
            let chunk = pairs.slice(start..<min(start + chunkSize, pairs.count))
            let pass = try model.forward(chunk.clean, captureSenders: true)
            let senders = pass.senders!, plane = pass.layout.rows * d
            diffSum += Double(chunk.count) * Metric.logitDiff.evaluate(
                logits: pass.logits.pointer, vocab: vocab, targets: MetricTargets(correct: chunk.correct, incorrect: chunk.incorrect)).mean
            for (b, row) in pass.layout.lastRows.enumerated() {
                answerDirection(direction.pointer, model: model, correct: chunk.correct[b], incorrect: chunk.incorrect[b])
                if let normBias = model.finalNormBias { normSum += Double(dot(normBias.pointer, direction.pointer, d)) }
                let scale = Double(pass.readout.rstd[b])
                for j in 0..<d { direction.pointer[j] *= model.finalNormWeight.pointer[j] }
                if c.norm == .layerNorm {
                    // The norm subtracts each row's mean; centring the direction does the same to every term.
                    let mean = direction.array.reduce(0, +) / Float(d)
                    for j in 0..<d { direction.pointer[j] -= mean }
                }
                for s in g.senders.indices {
                    sums[s] += scale * Double(dot(senders.pointer + s * plane + row * d, direction.pointer, d))
                }
                biasSum += scale * Double(dot(attentionBiases.pointer, direction.pointer, d))
            }
        }
        let n = Double(pairs.count)
        senders = g.senders
        contributions = sums.map { $0 / n }
        attentionBias = biasSum / n
        normBias = normSum / n
        logitDiff = diffSum / n
    }
}

/// Writes `mean W_U[correct] − mean W_U[incorrect]` (no incorrect answers: the first mean alone).
///
/// - Parameters:
///   - out: `[d]`
private func answerDirection(_ out: UnsafeMutablePointer<Float>, model: TransformerModel, correct: [Int], incorrect: [Int]) {
    let d = model.config.dModel
    out.update(repeating: 0, count: d)
    for id in correct { axpy(out, 1 / Float(correct.count), model.unembedding.pointer + id * d, d) }
    for id in incorrect { axpy(out, -1 / Float(incorrect.count), model.unembedding.pointer + id * d, d) }
}

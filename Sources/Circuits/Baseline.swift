import Kernels
import Transformer

/// How a model does on a batch of pairs without any patching: the metric on clean and corrupted
/// prompts, and how often a correct answer outscores every incorrect one.
public struct Baseline: Sendable, Codable, Equatable {
    public var metric: Metric
    public var pairs: Int
    /// The metric on the clean prompts (for `kl`, 0 by definition).
    public var clean: Double
    /// The metric on the corrupted prompts (for `kl`, KL(p_clean ‖ p_corrupt)).
    public var corrupt: Double
    /// Fraction of clean prompts whose best correct answer has a higher logit than every incorrect one.
    public var cleanAccuracy: Double
    /// The same on the corrupted prompts.
    public var corruptAccuracy: Double

    enum CodingKeys: String, CodingKey {
        case metric, pairs, clean, corrupt
        case cleanAccuracy = "clean_accuracy"
        case corruptAccuracy = "corrupt_accuracy"
    }

    /// Runs both prompt sets in chunks of `chunkSize` pairs and measures.
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, chunkSize: Int = 64) throws {
        try pairs.validate()
        let vocab = model.config.vocabularySize
        var sums = [0.0, 0.0, 0.0, 0.0]  // clean metric, corrupt metric, clean correct, corrupt correct
        for start in stride(from: 0, to: pairs.count, by: chunkSize) {
            let chunk = pairs.slice(start..<min(start + chunkSize, pairs.count))
            let clean = try model.forward(chunk.clean).logits, corrupt = try model.forward(chunk.corrupt).logits
            let targets = MetricTargets(metric: metric, correct: chunk.correct, incorrect: chunk.incorrect, cleanLogits: clean, vocab: vocab)
            let weight = Double(chunk.count)
            sums[0] += weight * metric.evaluate(logits: clean.pointer, vocab: vocab, targets: targets).mean
            sums[1] += weight * metric.evaluate(logits: corrupt.pointer, vocab: vocab, targets: targets).mean
            for (k, logits) in [clean, corrupt].enumerated() {
                for i in 0..<chunk.count {
                    let row = logits.pointer + i * vocab
                    let bestCorrect = chunk.correct[i].map { row[$0] }.max()!
                    let bestIncorrect = chunk.incorrect[i].map { row[$0] }.max() ?? -.infinity
                    if bestCorrect > bestIncorrect { sums[2 + k] += 1 }
                }
            }
        }
        self.metric = metric
        self.pairs = pairs.count
        let n = Double(pairs.count)
        clean = sums[0] / n
        corrupt = sums[1] / n
        cleanAccuracy = sums[2] / n
        corruptAccuracy = sums[3] / n
    }
}

import Foundation
import Kernels
import Transformer

/// A model, a batch of prompt pairs and a metric: everything the discovery methods share.
///
/// Holds the patching engine (clean and corrupted runs cached) and the metric's baselines.
public final class Experiment {
    public let model: TransformerModel
    public let graph: CircuitGraph
    public let pairs: PairBatch
    public let metric: Metric
    public let ablation: Ablation
    /// Patched forward passes on the whole batch.
    public let engine: PatchingEngine
    /// Answers and, for `kl`, the clean distributions.
    public let targets: MetricTargets
    /// The metric on the clean run (α = 0 everywhere).
    public let cleanMetric: Double
    /// The metric with every edge corrupted (α = 1 everywhere).
    public let corruptMetric: Double

    /// Runs the clean and corrupted prompts and measures both baselines.
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample) throws {
        try pairs.validate()
        self.model = model
        self.pairs = pairs
        self.metric = metric
        self.ablation = ablation
        engine = try PatchingEngine(model: model, clean: pairs.clean, corrupt: pairs.corrupt, ablation: ablation)
        graph = engine.graph
        targets = MetricTargets(
            correct: pairs.correct, incorrect: pairs.incorrect,
            reference: MetricTargets.probabilities(engine.cleanLogits, vocab: model.config.vocabularySize))
        cleanMetric = metric.evaluate(logits: engine.cleanLogits.pointer, vocab: model.config.vocabularySize, targets: targets).mean
        let everything = engine.run(EdgeMask(graph: graph, value: 1))
        corruptMetric = metric.evaluate(logits: everything.pointer, vocab: model.config.vocabularySize, targets: targets).mean
    }

    /// The metric with edges patched by `mask`.
    public func evaluate(_ mask: EdgeMask) -> Double { evaluate([mask])[0] }

    /// The metric under each of `masks`, computed in one batched pass.
    public func evaluate(_ masks: [EdgeMask]) -> [Double] {
        let logits = engine.run(masks)
        let vocab = model.config.vocabularySize, n = pairs.count
        return (0..<masks.count).map { k in
            metric.evaluate(logits: logits.pointer + k * n * vocab, vocab: vocab, targets: targets).mean
        }
    }

    /// `(M − M_corrupt) / (M_clean − M_corrupt)` (design §7).
    public func faithfulness(of value: Double) -> Double {
        (value - corruptMetric) / (cleanMetric - corruptMetric)
    }
}

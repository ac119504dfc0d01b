import Foundation
import Kernels
import Transformer

/// A model, a batch of prompt pairs and a metric: everything the discovery methods share.
///
/// Patched runs reuse each pair's clean and corrupted runs, which a `PatchingEngine` keeps: about
/// `(3·senders + 4·layers)·T·d` floats for `T` tokens. When the engines of all pairs fit in the
/// memory budget, one engine holds the whole batch (the fastest way). Otherwise the pairs are split
/// into chunks: as many chunks' engines as fit are kept, and the others are rebuilt (a clean and a
/// corrupted forward pass each) whenever they are needed, so memory stays within the budget however
/// many pairs there are.
public final class Experiment {
    public let model: TransformerModel
    public let graph: CircuitGraph
    public let pairs: PairBatch
    public let metric: Metric
    public let ablation: Ablation
    /// The metric on the clean run (α = 0 everywhere).
    public let cleanMetric: Double
    /// The metric with every edge corrupted (α = 1 everywhere).
    public let corruptMetric: Double
    /// The pairs each engine covers: one range for the whole batch when it fits the budget.
    public let chunks: [Range<Int>]
    /// How many chunks' engines are kept between evaluations (the first ones); the rest are rebuilt.
    public let keptChunks: Int
    /// Answers and, for `kl`, the clean distributions of each kept chunk's pairs (the others' come
    /// with their rebuilt engines, so nothing the size of the vocabulary is kept per pair beyond the budget).
    private let targets: [MetricTargets]
    /// Per chunk, the vocabulary columns the metric reads, when it reads only some (patched runs compute only those).
    private let columns: [ReadoutColumns?]
    /// The kept chunks' engines.
    private let engines: [Int: PatchingEngine]
    /// For mean ablation over several chunks: the means of all corrupted prompts.
    private let means: PositionMeans?
    /// Bytes the kept engines hold in `CacheBudget.shared` (0 under an explicit budget).
    private let heldBytes: Int

    /// Estimated bytes of a patching engine and its workspace for `rows` tokens of `examples` pairs.
    public static func engineBytes(model: TransformerModel, rows: Int, examples: Int) -> Int {
        let c = model.config, senders = model.graph.senders.count
        // Clean and corrupted senders, their residual streams, the run's captured senders, and the
        // pass's own activations (attention and MLP buffers of every layer, about 12 planes each).
        let planes = 3 * senders + 2 * (2 * c.layers + 1) + 12 * c.layers
        return 4 * (planes * rows * c.dModel + 2 * examples * c.vocabularySize)
    }

    /// Estimated bytes of the engines of `chunks` of `pairs`.
    static func engineBytes(model: TransformerModel, pairs: PairBatch, chunks: [Range<Int>]) -> Int {
        chunks.reduce(0) { $0 + engineBytes(model: model, rows: pairs.clean[$1].reduce(0) { $0 + $1.count }, examples: $1.count) }
    }

    /// Whether the engines of `pairs` in chunks of `chunkSize` pairs all fit in what the shared cache budget has left.
    public static func fits(model: TransformerModel, pairs: PairBatch, chunkSize: Int) -> Bool {
        let chunks = stride(from: 0, to: pairs.count, by: max(1, chunkSize)).map { $0..<min($0 + chunkSize, pairs.count) }
        return engineBytes(model: model, pairs: pairs, chunks: chunks) <= CacheBudget.shared.available
    }

    /// Runs the clean and corrupted prompts and measures both baselines; refuses pairs whose baselines
    /// are equal (or NaN), since faithfulness is then undefined.
    ///
    /// - Parameters:
    ///   - chunkSize: most pairs per engine when the whole batch does not fit in `memoryBudget` bytes
    ///     (fewer when one chunk of this size would not fit either)
    ///   - memoryBudget: bytes the kept engines may take; nil: what `CacheBudget.shared` has left,
    ///     held from it while the experiment lives
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample, chunkSize: Int = 32,
                memoryBudget: Int? = nil) throws {
        try pairs.validate()
        guard chunkSize >= 1 else { throw ModelInputError("chunk size must be at least 1, got \(chunkSize)") }
        self.model = model
        self.pairs = pairs
        self.metric = metric
        self.ablation = ablation
        graph = model.graph
        let rows = { (range: Range<Int>) in pairs.clean[range].reduce(0) { $0 + $1.count } }
        let budget = memoryBudget ?? CacheBudget.shared.available
        let whole = Self.engineBytes(model: model, rows: rows(0..<pairs.count), examples: pairs.count)
        // Past the budget, chunks small enough that even one rebuilt engine stays within it.
        let perPair = Self.engineBytes(model: model, rows: rows(0..<pairs.count) / pairs.count + 1, examples: 1)
        let size = min(chunkSize, max(1, budget / perPair))
        chunks = whole <= budget ? [0..<pairs.count]
            : stride(from: 0, to: pairs.count, by: size).map { $0..<min($0 + size, pairs.count) }
        var used = 0, kept = 0
        for range in chunks {
            used += Self.engineBytes(model: model, rows: rows(range), examples: range.count)
            guard used <= budget else { break }
            kept += 1
        }
        keptChunks = kept
        let keptBytes = Self.engineBytes(model: model, pairs: pairs, chunks: Array(chunks.prefix(kept)))
        heldBytes = memoryBudget == nil ? keptBytes : 0
        CacheBudget.shared.hold(heldBytes)
        means = ablation == .mean && chunks.count > 1 ? try PositionMeans(model: model, prompts: pairs.corrupt, chunkSize: chunkSize) : nil
        let (pairs, means, ablation, keptCount) = (pairs, means, ablation, kept)
        (targets, columns, cleanMetric, corruptMetric, engines) = try Self.baselines(model: model, pairs: pairs, metric: metric, chunks: chunks) { i, range in
            let engine = try PatchingEngine(model: model, clean: Array(pairs.clean[range]), corrupt: Array(pairs.corrupt[range]),
                                            ablation: ablation, means: means)
            return (engine, i < keptCount)
        }
    }

    /// An experiment made of engines already built, one per chunk of `pairs` in order (EAP's chunks,
    /// whose clean and corrupted runs it shares), all kept.
    init(model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation, engines built: [(Range<Int>, PatchingEngine)]) throws {
        precondition(built.first?.0.lowerBound == 0 && built.last?.0.upperBound == pairs.count
                     && zip(built, built.dropFirst()).allSatisfy { $0.0.upperBound == $1.0.lowerBound }, "the engines must cover the pairs in order")
        self.model = model
        self.pairs = pairs
        self.metric = metric
        self.ablation = ablation
        graph = model.graph
        chunks = built.map(\.0)
        keptChunks = built.count
        means = nil
        heldBytes = Self.engineBytes(model: model, pairs: pairs, chunks: chunks)
        CacheBudget.shared.hold(heldBytes)
        (targets, columns, cleanMetric, corruptMetric, engines) = try Self.baselines(model: model, pairs: pairs, metric: metric, chunks: chunks) { i, _ in
            (built[i].1, true)
        }
    }

    /// Each chunk's metric targets and the vocabulary columns the metric reads, the clean and corrupted metrics over all chunks and the engines
    /// to keep, from each chunk's engine; refuses pairs whose baselines are equal (or NaN), since
    /// faithfulness is then undefined.
    private static func baselines(
        model: TransformerModel, pairs: PairBatch, metric: Metric, chunks: [Range<Int>],
        engine: (Int, Range<Int>) throws -> (PatchingEngine, keep: Bool)
    ) throws -> ([MetricTargets], [ReadoutColumns?], Double, Double, [Int: PatchingEngine]) {
        var targets: [MetricTargets] = [], columns: [ReadoutColumns?] = [], clean = 0.0, corrupt = 0.0, keptEngines: [Int: PatchingEngine] = [:]
        let vocab = model.config.vocabularySize, everything = EdgeMask(graph: model.graph, value: 1)
        for (i, range) in chunks.enumerated() {
            let (engine, kept) = try engine(i, range)
            var chunkTargets = MetricTargets(metric: metric, correct: Array(pairs.correct[range]), incorrect: Array(pairs.incorrect[range]),
                                             cleanLogits: engine.cleanLogits, vocab: vocab)
            let weight = Double(range.count) / Double(pairs.count)
            clean += weight * metric.evaluate(logits: engine.cleanLogits.pointer, vocab: vocab, targets: chunkTargets).mean
            // Resample ablation's run with every edge corrupted is the corrupted run, already made.
            let corrupted = engine.corruptLogits ?? engine.run(everything)
            corrupt += weight * metric.evaluate(logits: corrupted.pointer, vocab: vocab, targets: chunkTargets).mean
            if kept { keptEngines[i] = engine } else { chunkTargets.reference = nil }  // recomputed with the engine (kl)
            targets.append(chunkTargets)
            columns.append(metric.columns(chunkTargets).map { ReadoutColumns($0, model: model) })
        }
        // Faithfulness divides by the difference: without one there is no behaviour to explain.
        guard abs(clean - corrupt) > 1e-9 * max(1, abs(clean)) else {
            throw ModelInputError(String(format: "the clean and corrupted prompts give the same %@ (%.4f): faithfulness is undefined; the corrupted prompts must change the behaviour (are they identical to the clean ones?)", metric.rawValue, clean))
        }
        return (targets, columns, clean, corrupt, keptEngines)
    }

    deinit { CacheBudget.shared.release(heldBytes) }

    /// The metric with edges patched by `mask`.
    public func evaluate(_ mask: EdgeMask) -> Double { evaluate([mask])[0] }

    /// The metric under each of `masks`, computed in one batched pass per chunk (`products`: see
    /// `PatchingEngine.run`).
    public func evaluate(_ masks: [EdgeMask], products: Bool = false) -> [Double] {
        let vocab = model.config.vocabularySize
        var values = [Double](repeating: 0, count: masks.count)
        forEachChunk { i, engine, chunkTargets, weight in
            let logits = engine.run(masks, columns: columns[i], products: products)
            for k in masks.indices {
                values[k] += weight * metric.evaluate(logits: logits.pointer + k * chunks[i].count * vocab, vocab: vocab, targets: chunkTargets).mean
            }
        }
        return values
    }

    /// The metric under each of `masks`, run one at a time: the same values as `evaluate(mask)` for each,
    /// but an engine that is not kept is built once for all of them instead of once per mask, and only one
    /// copy of a chunk's rows runs at a time (exact patching past the budget).
    public func evaluateEach(_ masks: [EdgeMask]) -> [Double] {
        let vocab = model.config.vocabularySize
        var values = [Double](repeating: 0, count: masks.count)
        forEachChunk { i, engine, chunkTargets, weight in
            for (k, mask) in masks.enumerated() {
                let logits = engine.run([mask], columns: columns[i])
                values[k] += weight * metric.evaluate(logits: logits.pointer, vocab: vocab, targets: chunkTargets).mean
            }
        }
        return values
    }

    /// Calls `body` with each chunk's index, engine (kept, or built again), metric targets and share of the
    /// pairs, in chunk order; a rebuilt or kept engine's run workspace is freed after it when there are several chunks.
    private func forEachChunk(_ body: (Int, PatchingEngine, MetricTargets, Double) -> Void) {
        for (i, range) in chunks.enumerated() {
            let engine = engine(i)
            body(i, engine, targets(i, engine: engine), Double(range.count) / Double(pairs.count))
            if chunks.count > 1 { engine.releaseWorkspace() }
        }
    }

    /// The metric under `mask` and its gradient ∂M/∂α for the edges into layer `layer` (`logits`: layer
    /// `layers`; `[edges]`, 0 for the edges into other layers), from runs that start at `layer` (or the first layer
    /// `mask` patches) and backward passes that stop there (`PatchingEngine.gradient`).
    public func gradient(_ mask: EdgeMask, through layer: Int) -> (metric: Double, edges: [Float]) {
        var scores = [Float](repeating: 0, count: graph.edgeCount), value = 0.0
        for (i, range) in chunks.enumerated() {
            let engine = engine(i)
            let weight = Double(range.count) / Double(pairs.count)
            value += weight * engine.gradient(mask, metric: metric, targets: targets(i, engine: engine), scale: Float(weight), through: layer,
                                              into: &scores)
        }
        return (value, scores)
    }

    /// Makes the kept engines' later runs start from a run under `mask` instead of the clean runs
    /// (`PatchingEngine.start(from:)`; nil: from the clean runs again). Results do not change; runs
    /// whose masks agree with `mask` below some layer skip the layers below it.
    public func startRuns(from mask: EdgeMask?) {
        for engine in engines.values { engine.start(from: mask) }
    }

    /// Chunk `i`'s metric targets, with the clean distribution `kl` compares with (kept, or computed
    /// from `engine`'s clean logits).
    private func targets(_ i: Int, engine: PatchingEngine) -> MetricTargets {
        var chunkTargets = targets[i]
        if metric == .kl, chunkTargets.reference == nil {
            chunkTargets.reference = MetricTargets.probabilities(engine.cleanLogits, vocab: model.config.vocabularySize)
        }
        return chunkTargets
    }

    /// Chunk `i`'s engine: kept, or built again for this evaluation.
    private func engine(_ i: Int) -> PatchingEngine {
        if let kept = engines[i] { return kept }
        let range = chunks[i]
        // The same prompts built an engine in init, so this cannot fail.
        return try! PatchingEngine(model: model, clean: Array(pairs.clean[range]), corrupt: Array(pairs.corrupt[range]),
                                   ablation: ablation, means: means)
    }

    /// `(M − M_corrupt) / (M_clean − M_corrupt)` (design §7).
    public func faithfulness(of value: Double) -> Double {
        (value - corruptMetric) / (cleanMetric - corruptMetric)
    }
}

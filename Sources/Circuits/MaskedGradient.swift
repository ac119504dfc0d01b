import Foundation
import Kernels
import Transformer

/// The metric and its gradient under edge masks on one batch of pairs: `∂M/∂α` for every edge and,
/// on request, `∂M/∂input`, from a run under the mask and its backward pass with sender gradients
/// routed through `(1 − α)` (design §4).
///
/// Learned edge masks call it once per step. Each chunk's clean reference (the answers and, for
/// `kl`, the clean distribution), its corrupted sender outputs and the stream they make do not depend
/// on the mask: with `cachesChunks` they are computed once and kept (about `(senders + 2·layers + 1) × T × d`
/// floats per chunk) as long as they fit in the memory budget (`CacheBudget.shared`); otherwise, and
/// past the budget, they are recomputed on every call and memory stays bounded by one chunk.
///
/// Runs under masks that corrupt most edges (learned masks past their warm-up, circuit searches) cost
/// about what an unpatched run does: receivers start from the corrupted stream and add only their edges
/// with α ≠ 1, senders' gradients sum only those edges, and with `wanted` only the edges asked for are
/// contracted.
public final class MaskedGradient {
    /// What a chunk's masked runs need that does not depend on the mask.
    private struct Chunk {
        /// The clean tokens the runs cover (after the shared prefixes, when they are reused).
        let clean: [[Int]]
        /// The shared prefixes the runs continue from, or nil.
        let prefix: PrefixCache?
        let layout: SequenceLayout
        let targets: MetricTargets
        /// `[senders, T, d]` corrupted sender outputs under the ablation.
        let corrupt: FloatBuffer
        /// `[2·layers + 1, T, d]` the stream made of corrupted senders at every point, where receivers whose
        /// edges are mostly corrupted start their sums.
        let corruptStream: FloatBuffer
        /// The chunk's share of the pairs.
        let weight: Float
    }

    public let model: TransformerModel
    public let pairs: PairBatch
    public let metric: Metric
    public let ablation: Ablation
    public let chunkSize: Int
    /// Whether runs continue from each pair's shared prefix (`SharedPrefixes`, resample ablation).
    public let reusesSharedPrefixes: Bool
    private let means: PositionMeans?
    private let ranges: [Range<Int>]
    private var cache: [Int: Chunk]?
    /// Each chunk's clean metric (averaged over its pairs) once it has been run, kept even when the chunk is not.
    private var cleanMetrics: [Int: Double] = [:]
    /// Bytes the cached chunks hold, and the most they may (nil: what `CacheBudget.shared` has left,
    /// held from it while the gradient lives).
    private var cachedBytes = 0
    private let memoryBudget: Int?

    /// Prepares the gradient of `metric` on `pairs`.
    ///
    /// - Parameters:
    ///   - reusesSharedPrefixes: under resample ablation, run the tokens each pair's prompts share at
    ///     their start once and every masked run from there on (false: whole prompts, which the input
    ///     gradient needs)
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample, chunkSize: Int = 32,
                cachesChunks: Bool = false, memoryBudget: Int? = nil, reusesSharedPrefixes: Bool = true) throws {
        try pairs.validate()
        guard chunkSize >= 1 else { throw ModelInputError("chunk size must be at least 1, got \(chunkSize)") }
        self.model = model
        self.pairs = pairs
        self.metric = metric
        self.ablation = ablation
        self.chunkSize = chunkSize
        self.reusesSharedPrefixes = reusesSharedPrefixes && ablation == .resample
        means = ablation == .mean ? try PositionMeans(model: model, prompts: pairs.corrupt, chunkSize: chunkSize) : nil
        ranges = stride(from: 0, to: pairs.count, by: chunkSize).map { $0..<min($0 + chunkSize, pairs.count) }
        cache = cachesChunks ? [:] : nil
        self.memoryBudget = memoryBudget
    }

    deinit { if memoryBudget == nil { CacheBudget.shared.release(cachedBytes) } }

    /// The chunk at `index`, from the cache or freshly run.
    private func chunk(_ index: Int) throws -> Chunk {
        if let cached = cache?[index] { return cached }
        let chunk = pairs.slice(ranges[index])
        let prefixes = reusesSharedPrefixes ? try SharedPrefixes(model: model, clean: chunk.clean, corrupt: chunk.corrupt) : nil
        // The corrupted stream: recorded by the corrupted run (resample ablation), else summed from the clean run's.
        let recorded = ablation == .resample
        let clean = try model.forward(prefixes?.clean ?? chunk.clean, captureSenders: !recorded, captureResiduals: !recorded, prefix: prefixes?.cache)
        let corrupted = try ablation.corruptSenders(model: model, corrupt: prefixes?.corrupt ?? chunk.corrupt, layout: clean.layout, means: means,
                                                    capturesResiduals: recorded, prefix: prefixes?.cache)
        let corrupt = corrupted.senders
        let stream = corrupted.pass?.residuals
            ?? PatchingEngine.corruptedStream(graph: model.graph, cleanResiduals: clean.residuals!, cleanSenders: clean.senders!,
                                              corruptSenders: corrupt, plane: clean.layout.rows * model.config.dModel)
        let targets = MetricTargets(metric: metric, correct: chunk.correct, incorrect: chunk.incorrect, cleanLogits: clean.logits,
                                    vocab: model.config.vocabularySize)
        cleanMetrics[index] = metric.evaluate(logits: clean.logits.pointer, vocab: model.config.vocabularySize, targets: targets).mean
        let prepared = Chunk(clean: prefixes?.clean ?? chunk.clean, prefix: prefixes?.cache, layout: clean.layout,
                             targets: targets, corrupt: corrupt, corruptStream: stream, weight: Float(chunk.count) / Float(pairs.count))
        let bytes = 4 * (corrupt.count + stream.count + (targets.reference?.count ?? 0))
        if cache != nil, memoryBudget.map({ cachedBytes + bytes <= $0 }) ?? CacheBudget.shared.reserve(bytes) {
            cache?[index] = prepared
            cachedBytes += bytes
        }
        return prepared
    }

    /// Runs chunks now and keeps them while they fit in the memory budget, before other caches take it (an
    /// experiment's engines, read only now and then, where a learned mask's steps read a chunk each); stops
    /// at the first that does not fit, since running the rest now would keep nothing.
    public func cacheChunks() throws {
        guard cache != nil else { return }
        for index in ranges.indices where cache?[index] == nil {
            _ = try chunk(index)
            guard cache?[index] != nil else { return }
        }
    }

    /// Chunks of `chunkSize` pairs the batch is run in (the last may be smaller).
    public var chunkCount: Int { ranges.count }

    /// Chunks kept in the cache (the others are run again whenever they are used).
    public var cachedChunkCount: Int { cache?.count ?? 0 }

    /// The clean model's metric averaged over the pairs of `chunks` (nil: every pair), as `gradient`
    /// averages the masked one.
    public func cleanMetric(chunks: [Int]? = nil) throws -> Double {
        let chosen = try checked(chunks)
        let total = Double(chosen.reduce(0) { $0 + ranges[$1].count })
        for index in chosen where cleanMetrics[index] == nil { _ = try chunk(index) }
        return chosen.reduce(0.0) { $0 + Double(ranges[$1].count) / total * cleanMetrics[$1]! }
    }

    /// `chunks`, or every chunk when nil, checked to be distinct chunks of the batch.
    private func checked(_ chunks: [Int]?) throws -> [Int] {
        let chosen = chunks ?? Array(ranges.indices)
        guard !chosen.isEmpty, chosen.allSatisfy(ranges.indices.contains), Set(chosen).count == chosen.count else {
            throw ModelInputError("chunks \(chosen) are not distinct chunks of 0..<\(ranges.count)")
        }
        return chosen
    }

    /// The metric under `mask`, averaged over pairs, and its gradient.
    ///
    /// - Parameters:
    ///   - inputGradient: also return `[T, d]` ∂M/∂(input embedding) for every row of the batch
    ///   - chunks: run only these chunks (indices below `chunkCount`), averaging over their pairs: a
    ///     minibatch (nil: every pair)
    ///   - wanted: `[edges]` the edges whose ∂M/∂α is needed (nil: every edge); the others may be 0
    public func gradient(
        _ mask: EdgeMask, inputGradient: Bool = false, chunks: [Int]? = nil, wanted: [Bool]? = nil, profile: EdgeAttribution.Profile? = nil,
        progress: EdgeAttribution.Progress? = nil
    ) throws -> EdgeAttribution.Gradient {
        let graph = model.graph, c = model.config, d = c.dModel
        guard mask.alpha.count == graph.edgeCount, (wanted?.count ?? graph.edgeCount) == graph.edgeCount else {
            throw ModelInputError("the mask has \(mask.alpha.count) coefficients and \(wanted?.count ?? graph.edgeCount) edges are marked wanted; "
                                  + "the graph has \(graph.edgeCount) edges")
        }
        precondition(!inputGradient || !reusesSharedPrefixes, "the input gradient needs runs over whole prompts (reusesSharedPrefixes: false)")
        let chosen = try checked(chunks)
        precondition(!inputGradient || chunks == nil, "the input gradient covers every pair")
        // Each chunk's weight is its share of the pairs run.
        let share = Float(pairs.count) / Float(chosen.reduce(0) { $0 + ranges[$1].count })
        var scores = [Float](repeating: 0, count: graph.edgeCount)
        var metricValue = 0.0
        let input = inputGradient ? FloatBuffer(count: pairs.clean.reduce(0) { $0 + $1.count } * d) : nil
        var firstRow = 0
        for (done, index) in chosen.enumerated() {
            let start = Date()
            let chunk = try chunk(index)
            let plane = chunk.layout.rows * d
            let tokens = chunk.clean.flatMap { $0 }
            let pass = ForwardPass(model: model, layout: chunk.layout, tokens: tokens, readout: .last, keepActivations: true,
                                   captureSenders: true, prefix: chunk.prefix)
            let patch = MaskPatch(graph: graph, masks: [mask], plane: plane, corrupt: chunk.corrupt.pointer, corruptResiduals: chunk.corruptStream,
                                  run: pass.senders!.pointer, earlier: nil, firstRunSender: 0,
                                  buffers: MaskPatch.buffers(heads: c.heads, copies: 1, plane: plane), allowsProduct: true)
            model.embed(pass.entry(0), tokens: tokens, layout: chunk.layout)
            model.run(pass, patch: patch)
            // corrupt_s − current_s for every sender: what each edge's gradient contracts with.
            let diffs = patch.differences(upTo: graph.senders.count)
            profile?.forward += Date().timeIntervalSince(start)
            let routing = MaskRouting(graph: graph, alpha: mask.alpha, rows: chunk.layout.rows, dModel: d)
            let weight = chunk.weight * share
            let (value, dInput) = EdgeAttribution.backpropagate(model: model, pass: pass, metric: metric, targets: chunk.targets, scale: weight,
                                                       diffs: diffs, routing: routing, wanted: wanted, into: &scores, profile: profile)
            metricValue += Double(weight) * value
            input.map { ($0.pointer + firstRow * d).update(from: dInput.pointer, count: plane) }
            firstRow += chunk.layout.rows
            progress?(done + 1, chosen.count)
        }
        return EdgeAttribution.Gradient(edges: scores, metric: metricValue, input: input)
    }
}

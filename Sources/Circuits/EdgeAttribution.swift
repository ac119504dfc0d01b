import Foundation
import Kernels
import Transformer

/// Gradients of the metric with respect to every edge's coefficient α (design §4, §6): edge
/// attribution patching (EAP), its integrated-gradients variant (EAP-IG), and the gradient of a run
/// under any mask (learned edge masks).
///
/// `∂M/∂α_{s→r} = Σ_{examples, positions, d} (corrupt_s − current_s) · ∂M/∂input_r`, with the
/// receiver gradients of a backward pass through the run under α. At α = 0 the run is the clean one
/// and this is EAP's score. EAP-IG averages the α = 0 gradient over `steps` runs whose input
/// embeddings are `corrupt + (k/steps)(clean − corrupt)`, k = 0..<steps.
///
/// Pairs are processed in chunks (the metric is a mean over examples, so its gradient is a sum over
/// chunks), so memory stays bounded by a chunk; each receiver gradient is contracted with the
/// sender differences as the backward pass produces it, one GEMM per chunk of rows of a group of
/// receivers.
public enum EdgeAttribution {
    /// Progress of a run: chunks done and total.
    public typealias Progress = (_ done: Int, _ total: Int) -> Void

    /// Where a run spent its time, in seconds.
    public final class Profile: @unchecked Sendable {
        /// Forward passes (clean, corrupted and interpolated).
        public var forward = 0.0
        /// Backward passes, excluding the contraction.
        public var backward = 0.0
        /// Contracting receiver gradients with sender differences.
        public var contraction = 0.0

        /// An empty profile.
        public init() {}
    }

    /// The gradient of the mean metric over a batch of pairs, run under an edge mask.
    public struct Gradient {
        /// `[edges]` ∂M/∂α for every edge, in `CircuitGraph` edge order (EAP-IG: the path average).
        public var edges: [Float]
        /// The metric under the mask, averaged over pairs (EAP-IG: at the clean input).
        public var metric: Double
        /// `[T, d]` ∂M/∂(input embedding) at every row of the batch (pairs packed in order), when asked for.
        public var input: FloatBuffer?
    }

    /// EAP (`integratedGradientSteps` nil) or EAP-IG scores for every edge of `model`'s graph, in
    /// `CircuitGraph` edge order.
    ///
    /// - Parameters:
    ///   - integratedGradientSteps: nil for EAP, the number of interpolation points for EAP-IG
    ///   - chunkSize: pairs per forward/backward chunk
    public static func scores(
        model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample,
        integratedGradientSteps: Int? = nil, chunkSize: Int = 32, reusesSharedPrefixes: Bool = true, profile: Profile? = nil,
        shareRuns: ShareRuns? = nil, progress: Progress? = nil
    ) throws -> [Float] {
        try gradient(model: model, pairs: pairs, metric: metric, ablation: ablation, integratedGradientSteps: integratedGradientSteps,
                     chunkSize: chunkSize, reusesSharedPrefixes: reusesSharedPrefixes, profile: profile, shareRuns: shareRuns,
                     progress: progress).edges
    }

    /// Takes each chunk's clean and corrupted runs as a patching engine (pairs in order), so that
    /// the experiment is made of them instead of running them again.
    public typealias ShareRuns = (Range<Int>, PatchingEngine) -> Void

    /// ∂M/∂α for every edge (and optionally ∂M/∂input) of the run under `mask`.
    ///
    /// - Parameters:
    ///   - mask: the edge coefficients of the run; nil for α = 0 (the clean run: EAP)
    ///   - integratedGradientSteps: EAP-IG's interpolation points (α = 0 and resample ablation only)
    ///   - chunkSize: pairs per forward/backward chunk
    ///   - inputGradient: also return the gradient with respect to the input embeddings
    ///   - reusesSharedPrefixes: under resample ablation, run the tokens each pair's prompts share at
    ///     their start once and every run from there on (`SharedPrefixes`: the rows left out have sender
    ///     differences of exactly zero); false runs whole prompts, for measuring the gain
    ///   - shareRuns: handed each chunk's clean and corrupted runs as a patching engine (α = 0 only)
    public static func gradient(
        model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample, mask: EdgeMask? = nil,
        integratedGradientSteps: Int? = nil, chunkSize: Int = 32, inputGradient: Bool = false, reusesSharedPrefixes: Bool = true,
        profile: Profile? = nil, shareRuns: ShareRuns? = nil, progress: Progress? = nil
    ) throws -> Gradient {
        try pairs.validate()
        if let integratedGradientSteps {
            guard integratedGradientSteps >= 1 else { throw ModelInputError("EAP-IG needs at least one step, got \(integratedGradientSteps)") }
            guard ablation == .resample else {
                throw ModelInputError("EAP-IG interpolates between the corrupted and the clean prompts' embeddings, so it needs resample ablation; "
                                      + "use EAP (or exact patching) with \(ablation.rawValue) ablation")
            }
            guard mask == nil else { throw ModelInputError("EAP-IG is defined at α = 0; give no mask") }
            guard !inputGradient else { throw ModelInputError("EAP-IG averages gradients over interpolated inputs; ask for the input gradient without it") }
        }
        if let mask {
            precondition(shareRuns == nil, "runs under a mask are not the clean and corrupted runs")
            return try MaskedGradient(model: model, pairs: pairs, metric: metric, ablation: ablation, chunkSize: chunkSize,
                                      reusesSharedPrefixes: reusesSharedPrefixes && !inputGradient)
                .gradient(mask, inputGradient: inputGradient, profile: profile, progress: progress)
        }
        let graph = model.graph
        let steps = integratedGradientSteps ?? 0
        let c = model.config, vocab = c.vocabularySize, d = c.dModel
        let means = ablation == .mean ? try PositionMeans(model: model, prompts: pairs.corrupt, chunkSize: chunkSize) : nil
        var scores = [Float](repeating: 0, count: graph.edgeCount)
        var metricValue = 0.0
        let input = inputGradient ? FloatBuffer(count: pairs.clean.reduce(0) { $0 + $1.count } * d) : nil
        var firstRow = 0
        let chunks = stride(from: 0, to: pairs.count, by: chunkSize).map { $0..<min($0 + chunkSize, pairs.count) }
        for (done, range) in chunks.enumerated() {
            let chunk = pairs.slice(range)
            let weight = Float(chunk.count) / Float(pairs.count)
            var start = Date()
            // Runs over the tokens after each pair's shared prefix (the input gradient needs every row).
            let prefixes = reusesSharedPrefixes && ablation == .resample && !inputGradient
                ? try SharedPrefixes(model: model, clean: chunk.clean, corrupt: chunk.corrupt) : nil
            let cleanTokens = prefixes?.clean ?? chunk.clean
            let cleanPass = try model.forward(cleanTokens, keepActivations: steps == 0, captureSenders: true,
                                              captureResiduals: shareRuns != nil, prefix: prefixes?.cache)
            let layout = cleanPass.layout, plane = layout.rows * d
            // EAP-IG's first point is the corrupted input itself: its pass, kept for the backward, is step 0.
            let corrupted = try ablation.corruptSenders(
                model: model, corrupt: prefixes?.corrupt ?? chunk.corrupt, layout: layout, means: means, keepActivations: steps > 0,
                readsOut: shareRuns != nil, capturesResiduals: shareRuns != nil, prefix: prefixes?.cache)
            let corruptSenders = corrupted.senders
            var corruptPass = corrupted.pass
            let corruptInput = FloatBuffer(uninitializedCount: steps > 0 ? plane : 0)
            if steps > 0 { corruptInput.pointer.update(from: corruptSenders.pointer, count: plane) }
            // diffs[s] = corrupt_s − clean_s, `[senders, T, d]`, in place over the corrupted outputs unless the engine keeps them.
            let diffs = differences(corrupt: corruptSenders, clean: cleanPass.senders!, inPlace: shareRuns == nil)
            if let shareRuns {
                shareRuns(range, PatchingEngine(model: model, ablation: ablation, cleanPass: cleanPass, corruptSenders: corruptSenders,
                                                corruptLogits: corruptPass?.logits, corruptResiduals: corruptPass?.residuals))
                if steps == 0 { corruptPass = nil }
            }
            profile?.forward += Date().timeIntervalSince(start)
            let targets = MetricTargets(metric: metric, correct: chunk.correct, incorrect: chunk.incorrect, cleanLogits: cleanPass.logits,
                                        vocab: vocab)
            if steps == 0 {
                let (value, dInput) = backpropagate(model: model, pass: cleanPass, metric: metric, targets: targets, scale: weight,
                                                    diffs: diffs, routing: nil, into: &scores, profile: profile)
                metricValue += Double(weight) * value
                input.map { ($0.pointer + firstRow * d).update(from: dInput.pointer, count: plane) }
            } else {
                // EAP-IG's steps run at interpolated inputs; the metric reported is the clean run's.
                metricValue += Double(weight) * metric.evaluate(logits: cleanPass.logits.pointer, vocab: vocab, targets: targets).mean
                let embedding = FloatBuffer(count: plane)
                for k in 0..<steps {
                    let pass: ForwardPass
                    if k == 0, let corrupted = corruptPass {
                        pass = corrupted
                        corruptPass = nil  // frees its activations once this step is done
                    } else {
                        interpolate(embedding.pointer, corrupt: corruptInput.pointer, clean: cleanPass.senders!.pointer,
                                    t: Float(k) / Float(steps), plane)
                        start = Date()
                        pass = try model.forward(cleanTokens, keepActivations: true, inputEmbedding: embedding.pointer, prefix: prefixes?.cache)
                        profile?.forward += Date().timeIntervalSince(start)
                    }
                    backpropagate(model: model, pass: pass, metric: metric, targets: targets, scale: weight / Float(steps), diffs: diffs,
                                  routing: nil, into: &scores, profile: profile)
                }
            }
            firstRow += layout.rows
            progress?(done + 1, chunks.count)
        }
        return Gradient(edges: scores, metric: metricValue, input: input)
    }

    /// Sender differences `corrupt_s − clean_s`, `[senders, T, d]`, written over `corrupt` itself when
    /// `inPlace` (else `corrupt` is left as it was).
    static func differences(corrupt: FloatBuffer, clean: FloatBuffer, inPlace: Bool) -> FloatBuffer {
        let out = inPlace ? corrupt : FloatBuffer(uninitializedCount: corrupt.count)
        parallelChunks(corrupt.count, minimumChunk: 1 << 16) { range in
            let from = range.lowerBound
            if !inPlace { (out.pointer + from).update(from: corrupt.pointer + from, count: range.count) }
            axpy(out.pointer + from, -1, clean.pointer + from, range.count)
        }
        return out
    }

    /// Backpropagates the metric of `pass`, scaled by `scale`, adding `Σ ⟨diffs_s, ∂M/∂input_r⟩` to
    /// every edge's score as the receiver gradients arrive; with `routing`, also builds its corrections.
    ///
    /// - Parameters:
    ///   - diffs: `[senders, T, d]` corrupted minus current sender outputs
    ///   - lowest: the last layer backpropagated through: only the edges into that layer and above are scored
    ///   - scoresOnlyLowest: score only the edges into layer `lowest` (`logits` counting as layer `layers`),
    ///     for a caller that needs no others; needs `routing`, whose groups are one layer each
    ///   - wanted: `[edges]` the edges whose scores are needed (nil: all); others may be left unscored
    /// - Returns: the metric of `pass` (unscaled), and `[T, d]` the scaled gradient with respect to the input embedding
    ///   (with `lowest` above 0, to the stream entering that layer)
    @discardableResult
    static func backpropagate(
        model: TransformerModel, pass: ForwardPass, metric: Metric, targets: MetricTargets, scale: Float, diffs: FloatBuffer,
        routing: MaskRouting?, through lowest: Int = 0, scoresOnlyLowest: Bool = false, wanted: [Bool]? = nil, into scores: inout [Float],
        profile: Profile?
    ) -> (metric: Double, input: FloatBuffer) {
        precondition(!scoresOnlyLowest || routing != nil, "scoring one layer needs routed groups")
        let vocab = model.config.vocabularySize
        let plane = pass.layout.rows * model.config.dModel
        let dLogits = FloatBuffer(count: pass.logits.count)
        let value = metric.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
        for i in 0..<dLogits.count { dLogits[i] *= scale }
        let backwardStart = Date(), contractionBefore = profile?.contraction ?? 0
        let dInput = model.backward(pass, dLogits: dLogits.pointer, routing: routing, through: lowest) { group in
            let contractionStart = Date()
            if !scoresOnlyLowest || min(group.receivers[0].layer, model.config.layers) == lowest {
                contract(group, diffs: diffs, plane: plane, graph: model.graph, wanted: wanted, into: &scores)
            }
            routing?.add(group)
            profile?.contraction += Date().timeIntervalSince(contractionStart)
        }
        profile?.backward += Date().timeIntervalSince(backwardStart) - ((profile?.contraction ?? 0) - contractionBefore)
        return (value.mean, dInput)
    }

    /// Adds Σ diff·grad of one chunk of a group of receivers to their edges' scores: one GEMM over the
    /// group's widest upstream prefix, `block = diffs[0..<upstream, chunk rows] · gradsᵀ`, then each
    /// receiver keeps its own prefix; or, when few of the group's edges are wanted, a dot product per
    /// wanted edge.
    ///
    /// - Parameters:
    ///   - diffs: `[senders, T, d]` corrupted minus current sender outputs
    ///   - plane: floats per sender in `diffs`
    ///   - wanted: `[edges]` the edges whose scores are needed (nil: all); others may be left unscored
    static func contract(_ group: ReceiverGradients, diffs: FloatBuffer, plane: Int, graph: CircuitGraph, wanted: [Bool]? = nil,
                         into scores: inout [Float]) {
        let receivers = group.receivers.map { graph.index(of: $0) }
        let upstream = receivers.map { graph.upstreamCount(receiverAt: $0) }.max()!
        let n = receivers.count, d = group.dModel, width = group.rows * d
        if let wanted {
            let edges = receivers.enumerated().flatMap { i, r in
                (0..<graph.upstreamCount(receiverAt: r)).filter { wanted[graph.edgeOffsets[r] + $0] }.map { (i, $0, graph.edgeOffsets[r] + $0) }
            }
            // A GEMM pays when it computes at most 8 times the products needed.
            if prefersSparseA(nonzeros: edges.count, of: upstream * n) {
                for (i, sender, e) in edges {
                    scores[e] += dot(diffs.pointer + sender * plane + group.firstRow * d, group.gradient(i), width)
                }
                return
            }
        }
        let block = FloatBuffer(uninitializedCount: upstream * n)  // [upstream, n]
        gemm(block.pointer, ldc: n, diffs.pointer + group.firstRow * d, lda: plane, transposeA: false,
             group.gradients, ldb: width, transposeB: true, accumulate: false, upstream, n, width)
        scores.withUnsafeMutableBufferPointer { s in
            for (i, r) in receivers.enumerated() {
                let row = s.baseAddress! + graph.edgeOffsets[r]
                for sender in 0..<graph.upstreamCount(receiverAt: r) { row[sender] += block[sender * n + i] }
            }
        }
    }
}

/// Sender gradients of a run under edge coefficients α, built from the receiver gradients as the backward
/// pass hands them over: per sender, the correction `Σ_r α_{s→r}·∂M/∂input_r` taken from the residual
/// gradient, or, where fewer of its edges have α ≠ 1 than α ≠ 0 (most edges corrupted, as in learned
/// masks and circuit searches), the gradient `Σ_r (1 − α_{s→r})·∂M/∂input_r` itself: the sum over the
/// fewer receivers.
final class MaskRouting: SenderGradientRouting {
    let graph: CircuitGraph
    /// `[edges]`
    let alpha: [Float]
    let rows: Int
    let dModel: Int
    /// The first sender whose gradient is kept: a backward pass that stops at a layer never asks for
    /// the senders below it.
    let firstSender: Int
    /// `[senders − firstSender, T, d]` the sums so far (a sender's plane is zeroed when first touched).
    private let sums: FloatBuffer
    /// Whether each sender's sum is nonzero yet.
    private var touched: [Bool]
    /// Per sender from `firstSender` on, whether every outgoing edge has α = 1 (its gradient is zero).
    private let cut: [Bool]
    /// Per sender, whether its sum is the gradient itself (over 1 − α) rather than a correction (over α).
    private let direct: [Bool]

    /// Zero sums for a run of `rows` rows, for the senders from `firstSender` on.
    init(graph: CircuitGraph, alpha: [Float], rows: Int, dModel: Int, firstSender: Int = 0) {
        self.graph = graph
        self.alpha = alpha
        self.rows = rows
        self.dModel = dModel
        self.firstSender = firstSender
        sums = FloatBuffer(uninitializedCount: (graph.senders.count - firstSender) * rows * dModel)
        touched = [Bool](repeating: false, count: graph.senders.count)
        // Per sender, its edges with α ≠ 0 (terms of the correction) and with α ≠ 1 (terms of the gradient).
        var nonZero = [Int](repeating: 0, count: graph.senders.count), notOne = nonZero
        for r in 0..<graph.receivers.count {
            let base = graph.edgeOffsets[r]
            for s in firstSender..<max(firstSender, graph.upstreamCount(receiverAt: r)) {
                if alpha[base + s] != 0 { nonZero[s] += 1 }
                if alpha[base + s] != 1 { notOne[s] += 1 }
            }
        }
        cut = graph.senders.indices.map { $0 >= firstSender && notOne[$0] == 0 }
        direct = graph.senders.indices.map { notOne[$0] < nonZero[$0] }
    }

    func isCut(sender s: Int) -> Bool { cut[s] }

    func routedGradient(sender s: Int) -> RoutedGradient {
        precondition(s >= firstSender, "sender \(s) is below the first one kept (\(firstSender))")
        let sum = touched[s] ? UnsafePointer(sums.pointer + (s - firstSender) * rows * dModel) : nil
        return direct[s] ? .direct(sum) : .residualMinus(sum)
    }

    /// Adds one chunk of a group of receivers to every upstream sender's sum from `firstSender` on, but
    /// those cut off (never asked for): a GEMM per run of consecutive senders with a term,
    /// `sums[.., chunk rows] += A · grads` with `A[s][i]` = `1 − α_{s→r_i}` (direct senders) or `α_{s→r_i}`.
    func add(_ group: ReceiverGradients) {
        let receivers = group.receivers.map { graph.index(of: $0) }
        let upstream = receivers.map { graph.upstreamCount(receiverAt: $0) }.max()!
        guard upstream > firstSender else { return }
        let n = receivers.count, senders = upstream - firstSender, plane = rows * dModel
        var a = [Float](repeating: 0, count: senders * n)  // [senders, n]
        var adds = [Bool](repeating: false, count: senders)  // whether sender firstSender + j gets anything
        for (i, r) in receivers.enumerated() {
            for s in firstSender..<graph.upstreamCount(receiverAt: r) where !cut[s] {
                let coefficient = direct[s] ? 1 - alpha[graph.edgeOffsets[r] + s] : alpha[graph.edgeOffsets[r] + s]
                guard coefficient != 0 else { continue }
                a[(s - firstSender) * n + i] = coefficient
                if !touched[s] { (sums.pointer + (s - firstSender) * plane).update(repeating: 0, count: plane) }
                touched[s] = true
                adds[s - firstSender] = true
            }
        }
        let width = group.rows * dModel
        a.withUnsafeBufferPointer { a in
            var j = 0
            while j < senders {
                guard adds[j] else { j += 1; continue }
                var end = j + 1
                while end < senders, adds[end] { end += 1 }
                let out = sums.pointer + j * plane + group.firstRow * dModel, block = a.baseAddress! + j * n
                // Learned masks' runs open a few edges per sender: an axpy per open edge.
                if prefersSparseA(nonzeros: a[(j * n)..<(end * n)].count { $0 != 0 }, of: (end - j) * n) {
                    gemmSparseA(out, ldc: plane, block, lda: n, group.gradients, ldb: width, accumulate: true, end - j, width, n)
                } else {
                    gemm(out, ldc: plane, block, lda: n, transposeA: false, group.gradients, ldb: width, transposeB: false, accumulate: true,
                         end - j, width, n)
                }
                j = end
            }
        }
    }
}

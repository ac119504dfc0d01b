import Foundation
import Kernels
import Transformer

/// Edge attribution patching (EAP) and its integrated-gradients variant (EAP-IG), design §6.
///
/// `score(s→r) = Σ_{examples, positions, d} (corrupt_s − clean_s) · ∂M/∂input_r`, which equals
/// ∂M/∂α at α = 0 for the metric M averaged over examples. EAP-IG averages the gradient over `steps`
/// runs whose input embeddings are `corrupt + (k/steps)(clean − corrupt)`, k = 0..<steps.
///
/// Pairs are processed in chunks (scores are sums over examples), so memory stays bounded; each
/// receiver gradient is contracted with the sender differences as the backward pass produces it,
/// one GEMM per chunk of rows of a block's receivers.
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

    /// Scores for every edge of `model`'s graph, in `CircuitGraph` edge order.
    ///
    /// - Parameters:
    ///   - integratedGradientSteps: nil for EAP, the number of interpolation points for EAP-IG
    ///   - chunkSize: pairs per forward/backward chunk
    public static func scores(
        model: TransformerModel, pairs: PairBatch, metric: Metric, ablation: Ablation = .resample,
        integratedGradientSteps: Int? = nil, chunkSize: Int = 32, profile: Profile? = nil, progress: Progress? = nil
    ) throws -> [Float] {
        try pairs.validate()
        if let steps = integratedGradientSteps, steps < 1 { throw ModelInputError("EAP-IG needs at least one step, got \(steps)") }
        let graph = CircuitGraph(config: model.config)
        let c = model.config, vocab = c.vocabularySize, senderCount = model.senderCount
        let means = ablation == .mean ? try meanSenders(model: model, prompts: pairs.corrupt, chunkSize: chunkSize) : nil
        var scores = [Float](repeating: 0, count: graph.edgeCount)
        let chunks = stride(from: 0, to: pairs.count, by: chunkSize).map { $0..<min($0 + chunkSize, pairs.count) }
        for (done, range) in chunks.enumerated() {
            let chunk = pairs.slice(range)
            let weight = Float(chunk.count) / Float(pairs.count)
            let steps = integratedGradientSteps ?? 0
            var start = Date()
            let cleanPass = try model.forward(chunk.clean, keepActivations: steps == 0, captureSenders: true)
            let layout = cleanPass.layout, plane = layout.rows * c.dModel
            // diffs[s] = corrupt_s − clean_s, `[senders, T, d]`
            let diffs: FloatBuffer
            // EAP-IG's first point is the corrupted input itself: its pass, kept for the backward, is step 0.
            var corruptPass: ForwardPass?
            switch ablation {
            case .resample:
                let pass = try model.forward(chunk.corrupt, readout: steps == 0 ? .none : .last, keepActivations: steps > 0,
                                             captureSenders: true)
                diffs = pass.senders!
                if steps > 0 { corruptPass = pass }
            case .zero: diffs = FloatBuffer(count: senderCount * plane)
            case .mean: diffs = means!.expanded(to: layout)
            }
            let clean = cleanPass.senders!
            axpy(diffs.pointer, -1, clean.pointer, diffs.count)
            profile?.forward += Date().timeIntervalSince(start)
            let targets = MetricTargets(correct: chunk.correct, incorrect: chunk.incorrect,
                                        reference: MetricTargets.probabilities(cleanPass.logits, vocab: vocab))

            /// Adds Σ diff·grad of one chunk of a group of receivers to their edges' scores: one GEMM over the
            /// group's widest upstream prefix, `block = diffs[0..<upstream, chunk rows] · gradsᵀ`, then each receiver
            /// keeps its own prefix.
            func contract(_ group: ReceiverGradients) {
                let contractionStart = Date()
                defer { profile?.contraction += Date().timeIntervalSince(contractionStart) }
                let receivers = group.receivers.map { graph.index(of: $0) }
                let upstream = receivers.map { graph.upstreamCount(receiverAt: $0) }.max()!
                let n = receivers.count
                let block = FloatBuffer(uninitializedCount: upstream * n)  // [upstream, n]
                let width = group.rows * c.dModel
                gemm(block.pointer, ldc: n, diffs.pointer + group.firstRow * c.dModel, lda: plane, transposeA: false,
                     group.gradients, ldb: width, transposeB: true, accumulate: false, upstream, n, width)
                scores.withUnsafeMutableBufferPointer { s in
                    for (i, r) in receivers.enumerated() {
                        let row = s.baseAddress! + graph.edgeOffsets[r]
                        for sender in 0..<graph.upstreamCount(receiverAt: r) { row[sender] += block[sender * n + i] }
                    }
                }
            }
            /// Backpropagates the chunk's metric, scaled by `scale`, through `pass` and contracts.
            func attribute(_ pass: ForwardPass, scale: Float) {
                let dLogits = FloatBuffer(count: pass.logits.count)
                _ = metric.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
                for i in 0..<dLogits.count { dLogits[i] *= scale }
                let backwardStart = Date(), contractionBefore = profile?.contraction ?? 0
                model.backward(pass, dLogits: dLogits.pointer, onReceivers: contract)
                profile?.backward += Date().timeIntervalSince(backwardStart) - ((profile?.contraction ?? 0) - contractionBefore)
            }

            if steps == 0 {
                attribute(cleanPass, scale: weight)
            } else {
                // The corrupted input embedding is the `input` sender's corrupted value: clean + diff.
                let cleanInput = clean.pointer, diffInput = diffs.pointer
                let embedding = FloatBuffer(count: plane)
                for k in 0..<steps {
                    if k == 0, let pass = corruptPass {
                        attribute(pass, scale: weight / Float(steps))
                        corruptPass = nil  // frees its activations before the next step allocates its own
                        continue
                    }
                    let t = Float(k) / Float(steps)
                    for i in 0..<plane { embedding[i] = cleanInput[i] + (1 - t) * diffInput[i] }
                    start = Date()
                    let pass = try model.forward(chunk.clean, keepActivations: true, inputEmbedding: embedding.pointer)
                    profile?.forward += Date().timeIntervalSince(start)
                    attribute(pass, scale: weight / Float(steps))
                }
            }
            progress?(done + 1, chunks.count)
        }
        return scores
    }

    /// Per-position means of every sender's output over the corrupted prompts (mean ablation).
    static func meanSenders(model: TransformerModel, prompts: [[Int]], chunkSize: Int) throws -> PositionMeans {
        let means = PositionMeans(senders: model.senderCount, positions: prompts.map(\.count).max() ?? 0, width: model.config.dModel)
        for start in stride(from: 0, to: prompts.count, by: chunkSize) {
            let pass = try model.forward(Array(prompts[start..<min(start + chunkSize, prompts.count)]), readout: .none, captureSenders: true)
            means.add(pass.senders!, layout: pass.layout)
        }
        return means
    }
}

/// Mean sender outputs per position over examples (mean ablation): `[senders, positions, d]`.
final class PositionMeans {
    /// Running sums, `[senders, positions, d]`.
    private let sums: FloatBuffer
    /// Examples seen at each position.
    private var counts: [Int]
    private let senders: Int
    private let positions: Int
    private let width: Int

    /// Empty sums for `senders` senders over `positions` positions.
    init(senders: Int, positions: Int, width: Int) {
        sums = FloatBuffer(count: senders * positions * width)
        counts = [Int](repeating: 0, count: positions)
        self.senders = senders
        self.positions = positions
        self.width = width
    }

    /// Adds the `[senders, T, d]` outputs of one batch laid out by `layout`.
    func add(_ outputs: FloatBuffer, layout: SequenceLayout) {
        let plane = layout.rows * width
        for r in 0..<layout.rows { counts[layout.positions[r]] += 1 }
        parallelFor(senders) { s in
            for r in 0..<layout.rows {
                axpy(self.sums.pointer + (s * self.positions + layout.positions[r]) * self.width, 1,
                     outputs.pointer + s * plane + r * self.width, self.width)
            }
        }
    }

    /// `[senders, T, d]` holding at each row the mean at its position.
    func expanded(to layout: SequenceLayout) -> FloatBuffer {
        let plane = layout.rows * width
        let out = FloatBuffer(count: senders * plane)
        parallelFor(senders) { s in
            for r in 0..<layout.rows {
                let p = layout.positions[r]
                let scale = 1 / Float(max(1, self.counts[p]))
                axpy(out.pointer + s * plane + r * self.width, scale, self.sums.pointer + (s * self.positions + p) * self.width, self.width)
            }
        }
        return out
    }
}

import Foundation
import Kernels
import Transformer

/// How corrupted sender outputs are produced (design §4).
public enum Ablation: String, CaseIterable, Codable, Sendable {
    /// The outputs of a full, unpatched run on the corrupted prompt.
    case resample
    /// The mean of the corrupted run's outputs over examples, per position.
    case mean
    /// Zeros.
    case zero
}

/// Runs a batch of prompt pairs with edges patched: each receiver's input becomes
/// `input_r + Σ_{s→r} α·(corrupt_s − current_s)`, where `current_s` is the sender's output in the
/// patched run itself (upstream patches propagate).
///
/// The clean run's sender outputs and residual checkpoints are cached, so a run starts at the first
/// layer that has a patched receiver instead of at the embedding.
public final class PatchingEngine {
    public let model: TransformerModel
    public let graph: CircuitGraph
    /// Packing of the batch (clean and corrupt prompts have the same lengths).
    public let layout: SequenceLayout
    public let ablation: Ablation
    /// `[examples, vocab]` clean logits at each example's last token.
    public let cleanLogits: FloatBuffer
    /// `[senders, T, d]` clean sender outputs.
    let cleanSenders: FloatBuffer
    /// `[senders, T, d]` corrupted sender outputs under `ablation`.
    let corruptSenders: FloatBuffer
    /// Residual stream of the clean run before block l (`2l`), between its attention and MLP (`2l+1`),
    /// and after the last block (`2L`); each `[T, d]`.
    let cleanCheckpoints: [FloatBuffer]
    /// The same sums for the corrupted sender outputs.
    let corruptCheckpoints: [FloatBuffer]
    /// Buffers of the last batched run, reused while the number of masks stays the same.
    private var workspace: Workspace?

    /// Buffers for running `copies` masks at once: every activation has `copies × T` rows, copy k in
    /// rows `k·T ..< (k+1)·T`.
    private final class Workspace {
        let copies: Int
        let layout: SequenceLayout
        /// `[senders, copies·T, d]` sender outputs of the patched runs (layers at or after the first patch).
        let senders: FloatBuffer
        /// One `[copies·T, d]` input per receiver of a block, for receivers with patched inputs.
        let receiverInputs: [FloatBuffer]
        let acts: LayerActivations
        let final: FloatBuffer
        let readout: UnembeddingActivations

        init(model: TransformerModel, base: SequenceLayout, copies: Int) {
            self.copies = copies
            layout = SequenceLayout(lengths: Array((0..<copies).map { _ in base.lengths }.joined()))
            let plane = layout.rows * model.config.dModel
            senders = FloatBuffer(uninitializedCount: model.senderCount * plane)
            receiverInputs = (0..<(3 * model.config.heads + 1)).map { _ in FloatBuffer(uninitializedCount: plane) }
            acts = LayerActivations(config: model.config, layout: layout)
            final = FloatBuffer(uninitializedCount: plane)
            readout = UnembeddingActivations(config: model.config, rows: layout.count)
        }
    }

    /// Runs the clean and corrupted prompts once and caches what patched runs reuse.
    ///
    /// - Parameters:
    ///   - clean, corrupt: token sequences, pairwise of equal length
    public init(model: TransformerModel, clean: [[Int]], corrupt: [[Int]], ablation: Ablation = .resample) throws {
        guard clean.count == corrupt.count else { throw ModelInputError("\(clean.count) clean prompts but \(corrupt.count) corrupted ones") }
        for (i, (a, b)) in zip(clean, corrupt).enumerated() where a.count != b.count {
            throw ModelInputError("pair \(i): clean prompt has \(a.count) tokens, corrupted prompt \(b.count); they must be equal")
        }
        self.model = model
        self.ablation = ablation
        graph = CircuitGraph(config: model.config)
        let cleanPass = try model.forward(clean, captureSenders: true)
        layout = cleanPass.layout
        cleanLogits = cleanPass.logits
        cleanSenders = cleanPass.senders!
        let plane = layout.rows * model.config.dModel
        switch ablation {
        case .resample:
            corruptSenders = try model.forward(corrupt, readout: .none, captureSenders: true).senders!
        case .mean:
            let means = PositionMeans(senders: model.senderCount, positions: layout.maxLength, width: model.config.dModel)
            means.add(try model.forward(corrupt, readout: .none, captureSenders: true).senders!, layout: layout)
            corruptSenders = means.expanded(to: layout)
        case .zero:
            corruptSenders = FloatBuffer(count: model.senderCount * plane)
        }
        cleanCheckpoints = Self.checkpoints(model, senders: cleanSenders, plane: plane, rows: layout.rows)
        corruptCheckpoints = Self.checkpoints(model, senders: corruptSenders, plane: plane, rows: layout.rows)
    }

    /// Residual checkpoints as sums of sender outputs and bias constants, in the forward pass's order.
    private static func checkpoints(_ model: TransformerModel, senders: FloatBuffer, plane: Int, rows: Int) -> [FloatBuffer] {
        let c = model.config
        var out: [FloatBuffer] = []
        var resid = FloatBuffer(count: plane)
        resid.pointer.update(from: senders.pointer, count: plane)
        for l in 0..<c.layers {
            out.append(resid)
            let mid = FloatBuffer(uninitializedCount: plane)
            addSum(mid.pointer, (0..<c.heads).map { UnsafePointer(senders.pointer + Sender.head(layer: l, head: $0).index(heads: c.heads) * plane) },
                   plane, onto: resid.pointer)
            if let bo = model.blocks[l].bo { addBias(mid.pointer, bo.pointer, rows, c.dModel) }
            out.append(mid)
            resid = FloatBuffer(uninitializedCount: plane)
            addSum(resid.pointer, [senders.pointer + Sender.mlp(layer: l).index(heads: c.heads) * plane], plane, onto: mid.pointer)
        }
        out.append(resid)
        return out
    }

    /// `[examples, vocab]` logits at each example's last token with edges patched by `mask`.
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ mask: EdgeMask) -> FloatBuffer { run([mask]) }

    /// Logits for several masks in one batched pass: `[masks.count × examples, vocab]`, mask k's
    /// example i at row `k·examples + i`. Batching makes the matrix products taller, which small
    /// batches of prompts need to run at full speed (ACDC tries many masks).
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ masks: [EdgeMask]) -> FloatBuffer {
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(!masks.isEmpty && masks.allSatisfy { $0.alpha.count == g.edgeCount }, "masks must cover the graph's \(g.edgeCount) edges")
        let copies = masks.count
        if workspace?.copies != copies { workspace = Workspace(model: model, base: layout, copies: copies) }
        let w = workspace!
        let batchPlane = copies * plane
        let alphas = masks.map(\.alpha)
        // patched[r][k]: whether copy k changes receiver r's input.
        let patched = (0..<g.receivers.count).map { r in
            alphas.map { alpha in (g.edgeOffsets[r]..<g.edgeOffsets[r + 1]).contains { alpha[$0] != 0 } }
        }
        guard let firstPatched = patched.firstIndex(where: { $0.contains(true) }) else {
            for k in 0..<copies {
                (w.readout.logits.pointer + k * cleanLogits.count).update(from: cleanLogits.pointer, count: cleanLogits.count)
            }
            return w.readout.logits
        }
        let startLayer = min(g.receivers[firstPatched].layer, c.layers)
        // Senders before the first patched layer are the clean ones.
        let firstRunSender = 1 + startLayer * (c.heads + 1)
        /// Sender `s`'s output in copy `k`.
        func current(_ s: Int, _ k: Int) -> UnsafePointer<Float> {
            UnsafePointer(s < firstRunSender ? cleanSenders.pointer + s * plane : w.senders.pointer + s * batchPlane + k * plane)
        }
        /// Writes receiver `r`'s input in every copy into `out`, given the runs' residual there and the
        /// corrupted sum at that point.
        func receiverInput(_ r: Int, resid: UnsafePointer<Float>, corruptResid: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
            let base = g.edgeOffsets[r], count = g.upstreamCount(receiverAt: r)
            for (k, alpha) in alphas.enumerated() {
                let o = out + k * plane
                guard patched[r][k] else {
                    o.update(from: resid + k * plane, count: plane)
                    continue
                }
                var nonZero = 0, notOne = 0
                for s in 0..<count {
                    if alpha[base + s] != 0 { nonZero += 1 }
                    if alpha[base + s] != 1 { notOne += 1 }
                }
                if nonZero <= notOne {
                    // input_r = resid + Σ α (corrupt − current)
                    o.update(from: resid + k * plane, count: plane)
                    for s in 0..<count where alpha[base + s] != 0 {
                        let a = alpha[base + s]
                        axpy(o, a, corruptSenders.pointer + s * plane, plane)
                        axpy(o, -a, current(s, k), plane)
                    }
                } else {
                    // The same sum, starting from the corrupted one: corrupt + Σ (1 − α)(current − corrupt)
                    o.update(from: corruptResid, count: plane)
                    for s in 0..<count where alpha[base + s] != 1 {
                        let keep = 1 - alpha[base + s]
                        axpy(o, keep, current(s, k), plane)
                        axpy(o, -keep, corruptSenders.pointer + s * plane, plane)
                    }
                }
            }
        }

        var resid = w.final.pointer
        for k in 0..<copies {
            (w.acts.residPre.pointer + k * plane).update(from: cleanCheckpoints[2 * startLayer].pointer, count: plane)
        }
        if startLayer == c.layers {
            resid = w.acts.residPre.pointer
        } else {
            for l in startLayer..<c.layers {
                var inputs = ReceiverInputs(heads: c.heads)
                var anyHead = false
                for h in 0..<c.heads {
                    for (p, port) in QKV.allCases.enumerated() {
                        let r = g.index(of: .head(layer: l, head: h, port: port))
                        guard patched[r].contains(true) else { continue }
                        let buffer = w.receiverInputs[3 * h + p].pointer
                        receiverInput(r, resid: w.acts.residPre.pointer, corruptResid: corruptCheckpoints[2 * l].pointer, into: buffer)
                        switch port {
                        case .q: inputs.q[h] = UnsafePointer(buffer)
                        case .k: inputs.k[h] = UnsafePointer(buffer)
                        case .v: inputs.v[h] = UnsafePointer(buffer)
                        }
                        anyHead = true
                    }
                }
                model.attentionForward(layer: l, w.acts, layout: w.layout, inputs: anyHead ? inputs : nil,
                                       headOutputs: w.senders.pointer + Sender.head(layer: l, head: 0).index(heads: c.heads) * batchPlane)
                let rm = g.index(of: Receiver.mlp(layer: l))
                var mlpInput: UnsafePointer<Float>?
                if patched[rm].contains(true) {
                    let buffer = w.receiverInputs[3 * c.heads].pointer
                    receiverInput(rm, resid: w.acts.residMid.pointer, corruptResid: corruptCheckpoints[2 * l + 1].pointer, into: buffer)
                    mlpInput = UnsafePointer(buffer)
                }
                model.mlpForward(layer: l, w.acts, layout: w.layout, input: mlpInput,
                                 mlpOut: w.senders.pointer + Sender.mlp(layer: l).index(heads: c.heads) * batchPlane,
                                 residPost: l == c.layers - 1 ? w.final.pointer : w.acts.residPre.pointer)
            }
        }
        let rLogits = g.receivers.count - 1
        if patched[rLogits].contains(true) {
            let buffer = w.receiverInputs[0].pointer
            receiverInput(rLogits, resid: resid, corruptResid: corruptCheckpoints[2 * c.layers].pointer, into: buffer)
            resid = buffer
        }
        model.logitsForward(w.readout, resid: resid, rows: w.layout.lastRows)
        return w.readout.logits
    }
}

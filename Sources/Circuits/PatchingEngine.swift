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
    /// `[senders, T, d]` sender outputs of the current patched run (layers at or after its first patch).
    private let runSenders: FloatBuffer
    /// One `[T, d]` input per receiver of a block, for receivers with patched inputs.
    private let receiverInputs: [FloatBuffer]
    private let acts: LayerActivations
    private let final: FloatBuffer
    private let readout: UnembeddingActivations

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
        runSenders = FloatBuffer(uninitializedCount: model.senderCount * plane)
        receiverInputs = (0..<(3 * model.config.heads + 1)).map { _ in FloatBuffer(count: plane) }
        acts = LayerActivations(config: model.config, layout: layout)
        final = FloatBuffer(count: plane)
        readout = UnembeddingActivations(config: model.config, rows: layout.count)
    }

    /// Residual checkpoints as sums of sender outputs and bias constants, in the forward pass's order.
    private static func checkpoints(_ model: TransformerModel, senders: FloatBuffer, plane: Int, rows: Int) -> [FloatBuffer] {
        let c = model.config
        var out: [FloatBuffer] = []
        var resid = FloatBuffer(count: plane)
        resid.pointer.update(from: senders.pointer, count: plane)
        for l in 0..<c.layers {
            out.append(resid)
            let mid = FloatBuffer(count: plane)
            mid.pointer.update(from: resid.pointer, count: plane)
            addSum(mid.pointer, (0..<c.heads).map { UnsafePointer(senders.pointer + Sender.head(layer: l, head: $0).index(heads: c.heads) * plane) }, plane)
            if let bo = model.blocks[l].bo { addBias(mid.pointer, bo.pointer, rows, c.dModel) }
            out.append(mid)
            resid = FloatBuffer(count: plane)
            resid.pointer.update(from: mid.pointer, count: plane)
            axpy(resid.pointer, 1, senders.pointer + Sender.mlp(layer: l).index(heads: c.heads) * plane, plane)
        }
        out.append(resid)
        return out
    }

    /// `[examples, vocab]` logits at each example's last token with edges patched by `mask`.
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ mask: EdgeMask) -> FloatBuffer {
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(mask.alpha.count == g.edgeCount, "mask has \(mask.alpha.count) edges, graph \(g.edgeCount)")
        return mask.alpha.withUnsafeBufferPointer { alpha in
            let patched = (0..<g.receivers.count).map { r in
                (g.edgeOffsets[r]..<g.edgeOffsets[r + 1]).contains { alpha[$0] != 0 }
            }
            guard let firstPatched = patched.firstIndex(of: true) else {
                readout.logits.pointer.update(from: cleanLogits.pointer, count: cleanLogits.count)
                return readout.logits
            }
            let startLayer = min(g.receivers[firstPatched].layer, c.layers)
            // Senders before the first patched layer are the clean ones.
            let firstRunSender = 1 + startLayer * (c.heads + 1)
            func current(_ s: Int) -> UnsafePointer<Float> {
                UnsafePointer((s < firstRunSender ? cleanSenders.pointer : runSenders.pointer) + s * plane)
            }
            /// Writes receiver `r`'s patched input into `out` given the run's residual and the corrupted sums there.
            func receiverInput(_ r: Int, resid: UnsafePointer<Float>, corruptResid: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
                let base = g.edgeOffsets[r], count = g.upstreamCount(receiverAt: r)
                var nonZero = 0, notOne = 0
                for s in 0..<count {
                    if alpha[base + s] != 0 { nonZero += 1 }
                    if alpha[base + s] != 1 { notOne += 1 }
                }
                if nonZero <= notOne {
                    // input_r = resid + Σ α (corrupt − current)
                    out.update(from: resid, count: plane)
                    for s in 0..<count where alpha[base + s] != 0 {
                        let a = alpha[base + s]
                        axpy(out, a, corruptSenders.pointer + s * plane, plane)
                        axpy(out, -a, current(s), plane)
                    }
                } else {
                    // The same sum, starting from the corrupted one: corrupt + Σ (1 − α)(current − corrupt)
                    out.update(from: corruptResid, count: plane)
                    for s in 0..<count where alpha[base + s] != 1 {
                        let keep = 1 - alpha[base + s]
                        axpy(out, keep, current(s), plane)
                        axpy(out, -keep, corruptSenders.pointer + s * plane, plane)
                    }
                }
            }

            var resid = cleanCheckpoints[2 * min(startLayer, c.layers)].pointer
            if startLayer < c.layers {
                acts.residPre.pointer.update(from: resid, count: plane)
                for l in startLayer..<c.layers {
                    var inputs = ReceiverInputs(heads: c.heads)
                    var anyHead = false
                    for h in 0..<c.heads {
                        for (p, port) in QKV.allCases.enumerated() {
                            let r = g.index(of: .head(layer: l, head: h, port: port))
                            guard patched[r] else { continue }
                            let buffer = receiverInputs[3 * h + p].pointer
                            receiverInput(r, resid: acts.residPre.pointer, corruptResid: corruptCheckpoints[2 * l].pointer, into: buffer)
                            switch port {
                            case .q: inputs.q[h] = UnsafePointer(buffer)
                            case .k: inputs.k[h] = UnsafePointer(buffer)
                            case .v: inputs.v[h] = UnsafePointer(buffer)
                            }
                            anyHead = true
                        }
                    }
                    model.attentionForward(layer: l, acts, layout: layout, inputs: anyHead ? inputs : nil,
                                           headOutputs: runSenders.pointer + Sender.head(layer: l, head: 0).index(heads: c.heads) * plane)
                    let rm = g.index(of: Receiver.mlp(layer: l))
                    var mlpInput: UnsafePointer<Float>?
                    if patched[rm] {
                        let buffer = receiverInputs[3 * c.heads].pointer
                        receiverInput(rm, resid: acts.residMid.pointer, corruptResid: corruptCheckpoints[2 * l + 1].pointer, into: buffer)
                        mlpInput = UnsafePointer(buffer)
                    }
                    model.mlpForward(layer: l, acts, layout: layout, input: mlpInput,
                                     mlpOut: runSenders.pointer + Sender.mlp(layer: l).index(heads: c.heads) * plane,
                                     residPost: l == c.layers - 1 ? final.pointer : acts.residPre.pointer)
                }
                resid = final.pointer
            }
            let rLogits = g.receivers.count - 1
            if patched[rLogits] {
                let buffer = receiverInputs[0].pointer
                receiverInput(rLogits, resid: resid, corruptResid: corruptCheckpoints[2 * c.layers].pointer, into: buffer)
                resid = buffer
            }
            model.logitsForward(readout, resid: resid, rows: layout.lastRows)
            return readout.logits
        }
    }
}

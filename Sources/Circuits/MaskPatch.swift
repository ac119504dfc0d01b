import Kernels
import Transformer

/// The receiver inputs of a run under edge masks (design §4), for the model's layer loop:
/// `input_r = resid + Σ_{s→r} α_{s→r}·(corrupt_s − current_s)`, where `current_s` is the sender's output
/// in this run, so upstream patches propagate.
///
/// Several masks run side by side: copy k of the batch sits in rows `k·T ..< (k+1)·T` of the run.
final class MaskPatch: ReceiverPatch {
    let graph: CircuitGraph
    /// Per copy, `[edges]` coefficients.
    let alphas: [[Float]]
    /// `patched[r][k]`: whether copy k changes receiver r's input.
    let patched: [[Bool]]
    /// Rows × d of one copy.
    let plane: Int
    /// `[senders, T, d]` corrupted sender outputs (the same for every copy).
    let corrupt: UnsafePointer<Float>
    /// `[2·layers + 1, T, d]` the residual stream made of corrupted senders at every point (see
    /// `ForwardPass.residuals`), or nil; lets an input whose edges are mostly corrupted start there.
    let corruptResiduals: UnsafePointer<Float>?
    /// `[senders, copies·T, d]` the run's own sender outputs, from `firstRunSender` on.
    let run: UnsafePointer<Float>
    /// `[senders, T, d]` outputs of the senders before `firstRunSender`, shared by every copy (the clean run's).
    let earlier: UnsafePointer<Float>?
    /// The first sender the run writes (every sender of the layers it runs).
    var firstRunSender: Int
    /// One `[copies·T, d]` buffer per receiver of a block (`3·heads` attention receivers, then the MLP or logits).
    private let buffers: [FloatBuffer]

    /// A patch for `masks` over a run whose senders from `firstRunSender` on are written to `run`.
    init(graph: CircuitGraph, masks: [EdgeMask], plane: Int, corrupt: UnsafePointer<Float>, corruptResiduals: UnsafePointer<Float>?,
         run: UnsafePointer<Float>, earlier: UnsafePointer<Float>?, firstRunSender: Int, buffers: [FloatBuffer]) {
        precondition(earlier != nil || firstRunSender == 0, "senders before the run's first layer need their outputs")
        self.graph = graph
        alphas = masks.map(\.alpha)
        patched = (0..<graph.receivers.count).map { r in
            masks.map { mask in (graph.edgeOffsets[r]..<graph.edgeOffsets[r + 1]).contains { mask.alpha[$0] != 0 } }
        }
        self.plane = plane
        self.corrupt = corrupt
        self.corruptResiduals = corruptResiduals
        self.run = run
        self.earlier = earlier
        self.firstRunSender = firstRunSender
        self.buffers = buffers
    }

    /// `3·heads + 1` buffers for runs of `copies` copies of `plane` floats.
    static func buffers(heads: Int, copies: Int, plane: Int) -> [FloatBuffer] {
        (0...(3 * heads)).map { _ in FloatBuffer(uninitializedCount: copies * plane) }
    }

    /// The first receiver any mask patches, or nil when every mask is all zeros.
    var firstPatchedReceiver: Int? { patched.firstIndex { $0.contains(true) } }

    /// Sender `s`'s output in copy `k`.
    private func current(_ s: Int, _ k: Int) -> UnsafePointer<Float> {
        s < firstRunSender ? earlier! + s * plane : run + s * alphas.count * plane + k * plane
    }

    /// Writes receiver `r`'s input in every copy into `out`, given the run's stream `resid` there and
    /// the stream of corrupted senders at that point (`point` into `corruptResiduals`).
    private func input(_ r: Int, resid: UnsafePointer<Float>, point: Int, into out: UnsafeMutablePointer<Float>) {
        let base = graph.edgeOffsets[r], count = graph.upstreamCount(receiverAt: r)
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
            if let corruptResiduals, notOne < nonZero {
                // The same sum, starting from the corrupted one: corrupt + Σ (1 − α)(current − corrupt)
                o.update(from: corruptResiduals + point * plane, count: plane)
                for s in 0..<count where alpha[base + s] != 1 {
                    let keep = 1 - alpha[base + s]
                    axpy(o, keep, current(s, k), plane)
                    axpy(o, -keep, corrupt + s * plane, plane)
                }
            } else {
                // input_r = resid + Σ α (corrupt − current)
                o.update(from: resid + k * plane, count: plane)
                for s in 0..<count where alpha[base + s] != 0 {
                    let a = alpha[base + s]
                    axpy(o, a, corrupt + s * plane, plane)
                    axpy(o, -a, current(s, k), plane)
                }
            }
        }
    }

    func attentionInputs(layer: Int, resid: UnsafePointer<Float>) -> ReceiverInputs? {
        var inputs = ReceiverInputs(heads: graph.heads)
        var any = false
        for (i, r) in graph.attentionReceivers(ofLayer: layer).enumerated() where patched[r].contains(true) {
            input(r, resid: resid, point: 2 * layer, into: buffers[i].pointer)
            guard case .head(_, let h, let port) = graph.receivers[r] else { continue }
            inputs[h, port] = UnsafePointer(buffers[i].pointer)
            any = true
        }
        return any ? inputs : nil
    }

    func mlpInput(layer: Int, resid: UnsafePointer<Float>) -> UnsafePointer<Float>? {
        let r = graph.index(of: Receiver.mlp(layer: layer))
        guard patched[r].contains(true) else { return nil }
        input(r, resid: resid, point: 2 * layer + 1, into: buffers[3 * graph.heads].pointer)
        return UnsafePointer(buffers[3 * graph.heads].pointer)
    }

    func logitsInput(resid: UnsafePointer<Float>) -> UnsafePointer<Float>? {
        let r = graph.receivers.count - 1
        guard patched[r].contains(true) else { return nil }
        input(r, resid: resid, point: 2 * graph.layers, into: buffers[3 * graph.heads].pointer)
        return UnsafePointer(buffers[3 * graph.heads].pointer)
    }
}

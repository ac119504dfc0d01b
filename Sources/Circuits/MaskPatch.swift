import Kernels
import Transformer

/// The receiver inputs of a run under edge masks (design §4), for the model's layer loop:
/// `input_r = resid + Σ_{s→r} α_{s→r}·(corrupt_s − current_s)`, where `current_s` is the sender's output
/// in this run, so upstream patches propagate.
///
/// A sender whose every outgoing edge is corrupted (a node removed whole) may be replaced instead: its
/// output in the run is its corrupted output, which the stream carries, so its edges add nothing and the
/// layer loop does not compute it. Its difference `corrupt_s − current_s` is then zero, and so are the
/// gradients of its edges in a run for gradients. Runs that need every sender's own output (a run that
/// later runs start from; gradients of every edge) keep them.
///
/// Several masks run side by side: copy k of the batch sits in rows `k·T ..< (k+1)·T` of the run.
final class MaskPatch: ReceiverPatch {
    let graph: CircuitGraph
    /// Per copy, `[edges]` coefficients.
    let alphas: [[Float]]
    /// `patched[r][k]`: whether copy k changes receiver r's input (through an edge from a sender it does not replace).
    let patched: [[Bool]]
    /// `replaced[k][s]`: whether copy k replaces sender s's output by its corrupted output.
    let replaced: [[Bool]]
    /// Per sender, whether every copy replaces it.
    private let replacedEverywhere: [Bool]
    /// Rows × d of one copy.
    let plane: Int
    /// `[senders, T, d]` corrupted sender outputs (the same for every copy).
    let corrupt: UnsafePointer<Float>
    /// `[2·layers + 1, T, d]` the residual stream made of corrupted senders at every point (see
    /// `ForwardPass.residuals`), or nil; lets an input whose edges are mostly corrupted start there.
    let corruptResiduals: FloatBuffer?
    /// `[senders, copies·T, d]` the run's own sender outputs, from `firstRunSender` on.
    let run: UnsafePointer<Float>
    /// `[senders, T, d]` outputs of the senders before `firstRunSender`, shared by every copy: those of the
    /// run this one starts from (the clean run's, or another mask's), each sender's own.
    let earlier: UnsafePointer<Float>?
    /// The first sender the run writes (every sender of the layers it runs).
    var firstRunSender: Int
    /// One `[copies·T, d]` buffer per receiver of a block (`3·heads` attention receivers, then the MLP
    /// or logits), consecutive in memory so one GEMM can write a block's inputs.
    private let buffers: [FloatBuffer]
    /// `[senders, T, d]` `corrupt_s − current_s` for the senders before `diffsReady` (single-mask runs
    /// whose inputs are computed as one product).
    private var diffs: FloatBuffer?
    private var diffsReady = 0
    /// Whether inputs may be computed as one product (dense single masks: learned masks, gradients, a
    /// circuit's evaluation). The patching engine's trials keep edge-by-edge sums, so their results do
    /// not depend on how masks are batched.
    private let allowsProduct: Bool
    /// Whether the senders' differences are kept for a backward pass (`differences(upTo:)`); without
    /// it, products read the corrupted and current outputs in place.
    private let keepsDifferences: Bool

    /// A patch for `masks` over a run whose senders from `firstRunSender` on are written to `run`;
    /// `replacesNodes`: replace the senders a mask corrupts on every outgoing edge.
    init(graph: CircuitGraph, masks: [EdgeMask], plane: Int, corrupt: UnsafePointer<Float>, corruptResiduals: FloatBuffer?,
         run: UnsafePointer<Float>, earlier: UnsafePointer<Float>?, firstRunSender: Int, buffers: [FloatBuffer], allowsProduct: Bool = false,
         keepsDifferences: Bool = true, replacesNodes: Bool = false) {
        precondition(earlier != nil || firstRunSender == 0, "senders before the run's first layer need their outputs")
        self.graph = graph
        alphas = masks.map(\.alpha)
        let replaced = masks.map { replacesNodes ? Self.replacedSenders($0, graph: graph) : [Bool](repeating: false, count: graph.senders.count) }
        self.replaced = replaced
        replacedEverywhere = graph.senders.indices.map { s in replaced.allSatisfy { $0[s] } }
        patched = (0..<graph.receivers.count).map { r in
            let base = graph.edgeOffsets[r]
            return masks.indices.map { k in (0..<graph.upstreamCount(receiverAt: r)).contains { masks[k].alpha[base + $0] != 0 && !replaced[k][$0] } }
        }
        self.plane = plane
        self.corrupt = corrupt
        self.corruptResiduals = corruptResiduals
        self.run = run
        self.earlier = earlier
        self.firstRunSender = firstRunSender
        self.buffers = buffers
        self.allowsProduct = allowsProduct
        self.keepsDifferences = keepsDifferences
    }

    /// Per sender, whether `mask` corrupts every one of its outgoing edges.
    static func replacedSenders(_ mask: EdgeMask, graph: CircuitGraph) -> [Bool] {
        var all = [Bool](repeating: true, count: graph.senders.count)
        for r in 0..<graph.receivers.count {
            let base = graph.edgeOffsets[r]
            for s in 0..<graph.upstreamCount(receiverAt: r) where mask.alpha[base + s] != 1 { all[s] = false }
        }
        return all
    }

    /// Writes each copy's stream entering the run's first layer into `entry` (`[copies·T, d]`): `origin`
    /// (`[T, d]`), the stream entering it in the run started from, where `originReplaced` senders carry
    /// their corrupted outputs, changed for the senders before `firstRunSender` that this copy replaces and
    /// that run did not, or the other way round.
    func writeEntries(_ entry: UnsafeMutablePointer<Float>, from origin: UnsafePointer<Float>, originReplaced: [Bool]) {
        for k in alphas.indices {
            let e = entry + k * plane
            e.update(from: origin, count: plane)
            for s in 0..<firstRunSender where replaced[k][s] != originReplaced[s] {
                let sign: Float = replaced[k][s] ? 1 : -1
                axpy(e, sign, corrupt + s * plane, plane)
                axpy(e, -sign, current(s, k), plane)
            }
        }
    }

    /// `3·heads + 1` buffers for runs of `copies` copies of `plane` floats, views into one block.
    static func buffers(heads: Int, copies: Int, plane: Int) -> [FloatBuffer] {
        let size = copies * plane
        let block = FloatBuffer(uninitializedCount: (3 * heads + 1) * size)
        return (0...(3 * heads)).map { FloatBuffer(viewing: block, offset: $0 * size, count: size) }
    }

    /// Sender `s`'s output in copy `k`.
    private func current(_ s: Int, _ k: Int) -> UnsafePointer<Float> {
        s < firstRunSender ? earlier! + s * plane : run + s * alphas.count * plane + k * plane
    }

    /// Whether the inputs of `receivers` (consecutive) are cheaper as one product
    /// `inputs = resid + A·diffs` than edge by edge: a single mask with more than 1/64 of the group's
    /// edges to add (counting, when the corrupted stream is known, only the edges not fully corrupted).
    private func usesProduct(_ receivers: Range<Int>) -> Bool {
        guard allowsProduct, alphas.count == 1 else { return false }
        let alpha = alphas[0]
        let edges = graph.edgeOffsets[receivers.lowerBound]..<graph.edgeOffsets[receivers.upperBound]
        var nonZero = 0, notOne = 0
        for e in edges {
            if alpha[e] != 0 { nonZero += 1 }
            if alpha[e] != 1 { notOne += 1 }
        }
        return 64 * min(nonZero, corruptResiduals == nil ? nonZero : notOne) > edges.count
    }

    /// Writes the inputs of `receivers` (consecutive, all reading the same `upstream` senders) into
    /// `buffers[first...]` as one product over the senders with an edge to add: from the run's stream
    /// `resid`, `out_i = resid + Σ_s α_{s→r_i}·(corrupt_s − current_s)` over the senders with some α ≠ 0, or,
    /// when fewer senders have some α ≠ 1 (most of a masked gradient's senders are cut off), from the
    /// corrupted stream at `point`, `out_i = corrupt + Σ_s (α_{s→r_i} − 1)·(corrupt_s − current_s)` over those;
    /// one edge at a time where few of the product's coefficients are nonzero.
    private func productInputs(_ receivers: Range<Int>, upstream: Int, resid: UnsafePointer<Float>, point: Int, first: Int) {
        let alpha = alphas[0]
        var fromStream: [Int] = [], fromCorrupt: [Int] = []
        for s in 0..<upstream {
            let edges = receivers.map { alpha[graph.edgeOffsets[$0] + s] }
            if edges.contains(where: { $0 != 0 }), !replaced[0][s] { fromStream.append(s) }
            if edges.contains(where: { $0 != 1 }) { fromCorrupt.append(s) }
        }
        let corrupted = corruptResiduals != nil && fromCorrupt.count < fromStream.count
        let senders = corrupted ? fromCorrupt : fromStream
        let start = corrupted ? UnsafePointer(corruptResiduals!.pointer) + point * plane : resid
        let n = receivers.count, k = senders.count
        var a = [Float](repeating: 0, count: n * k)  // [n, k]
        for (i, r) in receivers.enumerated() {
            for (j, s) in senders.enumerated() { a[i * k + j] = alpha[graph.edgeOffsets[r] + s] - (corrupted ? 1 : 0) }
            buffers[first + i].pointer.update(from: start, count: plane)
        }
        guard k > 0 else { return }
        let sparse = prefersSparseA(nonzeros: a.count { $0 != 0 }, of: a.count)
        guard keepsDifferences else {
            // Nothing contracts the differences after this run (a circuit's evaluation): Σ a·corrupt_s and
            // −Σ a·current_s, each read in place, instead of `[senders, T, d]` differences kept for it.
            addProducts(a, senders: senders, first: first, sparse: sparse) { corrupt + $0 * plane }
            addProducts(a.map { -$0 }, senders: senders, first: first, sparse: sparse, splitAt: firstRunSender) { current($0, 0) }
            return
        }
        let diffs = differences(upTo: upstream)
        addProducts(a, senders: senders, first: first, sparse: sparse) { UnsafePointer(diffs.pointer) + $0 * plane }
    }

    /// Adds `a · rows` to the block's buffers from `buffers[first]` on (`a`: `[n, senders.count]`, senders
    /// ascending), reading the rows in place: `rows(s)` lie one plane apart within a stretch of senders,
    /// and stretches end at `splitAt` (where the rows move from `earlier` to `run`).
    ///
    /// Few nonzeros (learned masks open a few edges per sender): an axpy per nonzero, `gemmSparseA` over
    /// each stretch with `a` spread to its columns. Otherwise a product per run of consecutive senders.
    private func addProducts(_ a: [Float], senders: [Int], first: Int, sparse: Bool, splitAt: Int = 0,
                             _ rows: (Int) -> UnsafePointer<Float>) {
        let k = senders.count, n = a.count / max(k, 1)
        guard sparse else {
            var j = 0
            while j < k {
                var end = j + 1
                while end < k, senders[end] == senders[end - 1] + 1, senders[end] != splitAt { end += 1 }
                a.withUnsafeBufferPointer { a in
                    gemm(buffers[first].pointer, ldc: plane, a.baseAddress! + j, lda: k, transposeA: false, rows(senders[j]), ldb: plane,
                         transposeB: false, accumulate: true, n, plane, end - j)
                }
                j = end
            }
            return
        }
        var j = 0
        while j < k {
            let low = senders[j], high = senders[j] < splitAt ? min(splitAt, senders[k - 1] + 1) : senders[k - 1] + 1
            var spread = [Float](repeating: 0, count: n * (high - low))  // [n, high − low]
            var end = j
            while end < k, senders[end] < high {
                for i in 0..<n { spread[i * (high - low) + senders[end] - low] = a[i * k + end] }
                end += 1
            }
            gemmSparseA(buffers[first].pointer, ldc: plane, spread, lda: high - low, rows(low), ldb: plane, accumulate: true, n, plane, high - low)
            j = end
        }
    }

    /// `[senders, T, d]` `corrupt_s − current_s` of the single mask's run, filled for the senders
    /// before `upstream` (after the run, every sender's: the differences its edge gradients contract with);
    /// zero for a replaced sender, whose output in the run is its corrupted one.
    func differences(upTo upstream: Int) -> FloatBuffer {
        precondition(alphas.count == 1 && keepsDifferences, "sender differences are kept for single-mask runs that keep them")
        let diffs = self.diffs ?? FloatBuffer(uninitializedCount: graph.senders.count * plane)
        self.diffs = diffs
        for s in diffsReady..<max(diffsReady, upstream) {
            let d = diffs.pointer + s * plane
            if replaced[0][s] {
                d.update(repeating: 0, count: plane)
                continue
            }
            d.update(from: corrupt + s * plane, count: plane)
            axpy(d, -1, current(s, 0), plane)
        }
        diffsReady = max(diffsReady, upstream)
        return diffs
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
            // Edges to add: from the stream, those of senders not replaced (the stream carries the others'
            // corrupted outputs); from the corrupted stream, those not fully corrupted (never a replaced sender's).
            var own = 0, notOne = 0
            for s in 0..<count {
                if alpha[base + s] != 0, !replaced[k][s] { own += 1 }
                if alpha[base + s] != 1 { notOne += 1 }
            }
            if let corruptResiduals, notOne < own {
                // The same sum, starting from the corrupted one: corrupt + Σ (1 − α)(current − corrupt)
                o.update(from: corruptResiduals.pointer + point * plane, count: plane)
                for s in 0..<count where alpha[base + s] != 1 {
                    let keep = 1 - alpha[base + s]
                    axpy(o, keep, current(s, k), plane)
                    axpy(o, -keep, corrupt + s * plane, plane)
                }
            } else {
                // input_r = resid + Σ α (corrupt − current)
                o.update(from: resid + k * plane, count: plane)
                for s in 0..<count where alpha[base + s] != 0 && !replaced[k][s] {
                    let a = alpha[base + s]
                    axpy(o, a, corrupt + s * plane, plane)
                    axpy(o, -a, current(s, k), plane)
                }
            }
        }
    }

    /// The corrupted stream at `point` when it is receiver `r`'s input exactly (a single mask that
    /// corrupts every edge into `r`), else nil. It is read in place instead of copied, and the ports of a
    /// block that read it share one pointer, which the model's layer loop uses to normalize it once and
    /// project it once per key/value group (`TransformerModel.attentionForward`).
    private func corruptedStream(_ r: Int, point: Int) -> UnsafePointer<Float>? {
        guard alphas.count == 1, let corruptResiduals else { return nil }
        let alpha = alphas[0]
        guard (graph.edgeOffsets[r]..<graph.edgeOffsets[r + 1]).allSatisfy({ alpha[$0] == 1 }) else { return nil }
        return UnsafePointer(corruptResiduals.pointer) + point * plane
    }

    func attentionInputs(layer: Int, resid: UnsafePointer<Float>) -> ReceiverInputs? {
        var inputs = ReceiverInputs(heads: graph.heads)
        var any = false
        let receivers = graph.attentionReceivers(ofLayer: layer)
        let product = usesProduct(receivers)
        if product { productInputs(receivers, upstream: graph.firstSender(ofLayer: layer), resid: resid, point: 2 * layer, first: 0) }
        for (i, r) in receivers.enumerated() where patched[r].contains(true) {
            guard case .head(_, let h, let port) = graph.receivers[r] else { continue }
            if let stream = corruptedStream(r, point: 2 * layer) {
                inputs[h, port] = stream
            } else {
                if !product { input(r, resid: resid, point: 2 * layer, into: buffers[i].pointer) }
                inputs[h, port] = UnsafePointer(buffers[i].pointer)
            }
            any = true
        }
        return any ? inputs : nil
    }

    func mlpInput(layer: Int, resid: UnsafePointer<Float>) -> UnsafePointer<Float>? {
        let r = graph.index(of: Receiver.mlp(layer: layer))
        guard patched[r].contains(true) else { return nil }
        return corruptedStream(r, point: 2 * layer + 1) ?? writeInput(r, resid: resid, point: 2 * layer + 1)
    }

    func logitsInput(resid: UnsafePointer<Float>) -> UnsafePointer<Float>? {
        let r = graph.receivers.count - 1
        guard patched[r].contains(true) else { return nil }
        return corruptedStream(r, point: 2 * graph.layers) ?? writeInput(r, resid: resid, point: 2 * graph.layers)
    }

    /// Writes the input of the MLP or `logits` receiver `r` into the last buffer, by product or edge by
    /// edge, and returns it.
    private func writeInput(_ r: Int, resid: UnsafePointer<Float>, point: Int) -> UnsafePointer<Float> {
        if usesProduct(r..<(r + 1)) {
            productInputs(r..<(r + 1), upstream: graph.upstreamCount(receiverAt: r), resid: resid, point: point, first: 3 * graph.heads)
        } else {
            input(r, resid: resid, point: point, into: buffers[3 * graph.heads].pointer)
        }
        return UnsafePointer(buffers[3 * graph.heads].pointer)
    }

    func replacesEverywhere(_ s: Int) -> Bool { replacedEverywhere[s] }

    @discardableResult
    func replaceOutputs(_ senders: Range<Int>, in outputs: UnsafeMutablePointer<Float>) -> Bool {
        var wrote = false
        for (j, s) in senders.enumerated() {
            for k in alphas.indices where replaced[k][s] {
                (outputs + (j * alphas.count + k) * plane).update(from: corrupt + s * plane, count: plane)
                wrote = true
            }
        }
        return wrote
    }
}

import Foundation

/// Causal multi-head attention over packed sequences, forward and backward.
///
/// Each head reads its query, key and value rows through a `HeadSlice`, so a head's key may come
/// from a shared grouped-query projection or from a buffer of its own (edge patching gives every
/// query head its own `<k>`/`<v>` input). Attention never crosses examples: row `t` of example `b`
/// attends to rows `offsets[b] ... t`.

/// Rows of one head's vectors inside a larger buffer: row `r` starts at `pointer + r·stride`.
public struct HeadSlice {
    /// Row 0 of this head.
    public var pointer: UnsafeMutablePointer<Float>
    /// Distance between consecutive rows, in floats.
    public var stride: Int

    /// A view of rows spaced `stride` floats apart starting at `pointer`.
    public init(_ pointer: UnsafeMutablePointer<Float>, stride: Int) {
        self.pointer = pointer
        self.stride = stride
    }

    /// Row `r` of this head.
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Float> { pointer + r * stride }
}

/// Causal softmax attention for every head: `out_t = Σ_{u≤t} softmax_u(q_t·k_u·scale) v_u`.
///
/// - Parameters:
///   - out: per head `[rows, headDim]` views, written
///   - probs: `[heads, layout.attentionSize]`: for example `b`, a `[length, length]` block at
///     `attentionOffsets[b]` holding row-normalized weights (zero above the diagonal)
///   - q, k, v: per head `[rows, headDim]` views
///   - scale: usually `1/√headDim`
public func attentionForward(
    _ out: [HeadSlice], _ probs: UnsafeMutablePointer<Float>,
    _ q: [HeadSlice], _ k: [HeadSlice], _ v: [HeadSlice],
    _ layout: SequenceLayout, scale: Float, _ headDim: Int
) {
    let heads = q.count
    parallelFor(layout.count * heads) { item in
        let b = item / heads, h = item % heads
        let n = layout.lengths[b], r0 = layout.offsets[b]
        let block = probs + h * layout.attentionSize + layout.attentionOffsets[b]
        for t in 0..<n {
            let p = block + t * n
            let qt = q[h].row(r0 + t)
            var maxScore = -Float.infinity
            for u in 0...t {
                let s = dot(qt, k[h].row(r0 + u), headDim) * scale
                p[u] = s
                maxScore = max(maxScore, s)
            }
            var total: Float = 0
            var u = 0
            while u + 16 <= t + 1 {
                let e = vectorExp(load(p + u) - Vec(repeating: maxScore))
                store(p + u, e)
                total += e.sum()
                u += 16
            }
            while u <= t {
                let e = expf(p[u] - maxScore)
                p[u] = e
                total += e
                u += 1
            }
            let inverse = 1 / total
            for u in 0...t { p[u] *= inverse }
            for u in (t + 1)..<n { p[u] = 0 }
            let o = out[h].row(r0 + t)
            o.update(repeating: 0, count: headDim)
            for u in 0...t { axpy(o, p[u], v[h].row(r0 + u), headDim) }
        }
    }
}

/// Gradients of `attentionForward`'s query, key and value inputs, accumulated (overwritten when
/// `accumulate` is false).
///
/// Every head must have its own `dq`, `dk` and `dv` views (heads run in parallel); with grouped-query
/// attention sum the per-head key/value gradients of a group afterwards.
///
/// - Parameters:
///   - dq, dk, dv: per head `[rows, headDim]` views, accumulated into
///   - dout: per head `[rows, headDim]` gradient of the output
///   - probs: `[heads, layout.attentionSize]` from the forward pass
///   - q, k, v: per head `[rows, headDim]` forward inputs
public func attentionBackward(
    _ dq: [HeadSlice], _ dk: [HeadSlice], _ dv: [HeadSlice],
    _ dout: [HeadSlice], _ probs: UnsafePointer<Float>,
    _ q: [HeadSlice], _ k: [HeadSlice], _ v: [HeadSlice],
    _ layout: SequenceLayout, scale: Float, _ headDim: Int, accumulate: Bool = true
) {
    let heads = q.count
    parallelFor(layout.count * heads) { item in
        let b = item / heads, h = item % heads
        let n = layout.lengths[b], r0 = layout.offsets[b]
        let block = probs + h * layout.attentionSize + layout.attentionOffsets[b]
        if !accumulate {
            for t in r0..<(r0 + n) {
                dq[h].row(t).update(repeating: 0, count: headDim)
                dk[h].row(t).update(repeating: 0, count: headDim)
                dv[h].row(t).update(repeating: 0, count: headDim)
            }
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { scratch in
            let ds = scratch.baseAddress!
            for t in 0..<n {
                let p = block + t * n
                let g = dout[h].row(r0 + t)
                // dp_u = g·v_u; ds_u = p_u (dp_u − Σ p dp)
                var weighted: Float = 0
                for u in 0...t {
                    let dp = dot(g, v[h].row(r0 + u), headDim)
                    ds[u] = dp
                    weighted += p[u] * dp
                }
                let dqt = dq[h].row(r0 + t), qt = q[h].row(r0 + t)
                for u in 0...t {
                    let d = p[u] * (ds[u] - weighted) * scale
                    axpy(dqt, d, k[h].row(r0 + u), headDim)
                    axpy(dk[h].row(r0 + u), d, qt, headDim)
                    axpy(dv[h].row(r0 + u), p[u], g, headDim)
                }
            }
        }
    }
}

/// Naive causal attention for one head of one sequence in `Double`, for tests.
///
/// - Parameters:
///   - q, k, v: `[length][headDim]`
/// - Returns: `[length][headDim]`
public func attentionReference(_ q: [[Double]], _ k: [[Double]], _ v: [[Double]], scale: Double) -> [[Double]] {
    let n = q.count, d = q.first?.count ?? 0
    var out = [[Double]](repeating: [Double](repeating: 0, count: d), count: n)
    for t in 0..<n {
        let scores = (0...t).map { u in zip(q[t], k[u]).map { $0 * $1 }.reduce(0, +) * scale }
        let m = scores.max()!
        let e = scores.map { Foundation.exp($0 - m) }
        let z = e.reduce(0, +)
        for u in 0...t { for i in 0..<d { out[t][i] += e[u] / z * v[u][i] } }
    }
    return out
}

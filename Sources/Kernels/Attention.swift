import Foundation

/// Causal multi-head attention over packed sequences, forward and backward.
///
/// Each head reads its query, key and value rows through a `HeadSlice`, so a head's key may come
/// from a shared grouped-query projection or from a buffer of its own (edge patching gives every
/// query head its own `<k>`/`<v>` input). Attention never crosses examples: row `t` of example `b`
/// attends to rows `offsets[b] ... t`, and, in a run continuing from a prefix, to the prefix's
/// positions before the example's start.

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

/// Keys and values of the positions a run continues from (`SequenceLayout.starts`), read by the
/// attention of the rows after them and not differentiated: example `b`'s position `u < starts[b]`
/// is row `offsets[b] + u` of `k[h]` and `v[h]`.
public struct AttentionPrefix {
    /// Per head, the prefix keys (after RoPE).
    public var k: [HeadSlice]
    /// Per head, the prefix values.
    public var v: [HeadSlice]
    /// Per example of the run, the row of its position 0 in `k` and `v`.
    public var offsets: [Int]

    /// Prefix keys and values at the given rows.
    public init(k: [HeadSlice], v: [HeadSlice], offsets: [Int]) {
        self.k = k
        self.v = v
        self.offsets = offsets
    }
}

/// Where one head of one example finds the key and value of each context position `u`: the
/// prefix's rows before the example's start, the run's own rows from it on.
private struct ContextRows {
    /// The example's first position in the run (positions before it are in the prefix).
    let start: Int
    /// The run's key and value rows of position `start`.
    let ownK: UnsafeMutablePointer<Float>, ownV: UnsafeMutablePointer<Float>
    /// The prefix's key and value rows of position 0 (nil without a prefix).
    let prefixK: UnsafeMutablePointer<Float>?, prefixV: UnsafeMutablePointer<Float>?
    let strides: (ownK: Int, ownV: Int, prefixK: Int, prefixV: Int)

    /// Head `h`'s context rows for example `b`, whose first row in the run is `r0`.
    init(_ k: HeadSlice, _ v: HeadSlice, firstRow r0: Int, head h: Int, example b: Int, start: Int, prefix: AttentionPrefix?) {
        precondition(start == 0 || prefix != nil, "a run continuing from a prefix needs the prefix's keys and values")
        self.start = start
        ownK = k.row(r0)
        ownV = v.row(r0)
        if start > 0, let prefix {
            prefixK = prefix.k[h].row(prefix.offsets[b])
            prefixV = prefix.v[h].row(prefix.offsets[b])
            strides = (k.stride, v.stride, prefix.k[h].stride, prefix.v[h].stride)
        } else {
            (prefixK, prefixV) = (nil, nil)
            strides = (k.stride, v.stride, 0, 0)
        }
    }

    @inline(__always) func key(_ u: Int) -> UnsafeMutablePointer<Float> {
        u < start ? prefixK! + u * strides.prefixK : ownK + (u - start) * strides.ownK
    }

    @inline(__always) func value(_ u: Int) -> UnsafeMutablePointer<Float> {
        u < start ? prefixV! + u * strides.prefixV : ownV + (u - start) * strides.ownV
    }
}

/// Causal softmax attention for every head: `out_t = Σ_{u≤t} softmax_u(q_t·k_u·scale) v_u`.
///
/// - Parameters:
///   - out: per head `[rows, headDim]` views, written
///   - probs: `[heads, layout.attentionSize]`: for example `b`, a `[length, start + length]` block at
///     `attentionOffsets[b]` holding row-normalized weights over its context positions (zero after
///     each row's own position)
///   - q, k, v: per head `[rows, headDim]` views
///   - prefix: keys and values of the positions before each example's start (when `layout` has starts)
///   - scale: usually `1/√headDim`
///   - heads: the heads to compute (nil: all); the others' `out` and `probs` are left as they are
public func attentionForward(
    _ out: [HeadSlice], _ probs: UnsafeMutablePointer<Float>,
    _ q: [HeadSlice], _ k: [HeadSlice], _ v: [HeadSlice],
    _ layout: SequenceLayout, prefix: AttentionPrefix? = nil, scale: Float, _ headDim: Int, heads: [Int]? = nil
) {
    let heads = heads ?? Array(q.indices)
    parallelFor(layout.count * heads.count) { item in
        let b = item / heads.count, h = heads[item % heads.count]
        let n = layout.lengths[b], r0 = layout.offsets[b], start = layout.starts[b], m = start + n
        let context = ContextRows(k[h], v[h], firstRow: r0, head: h, example: b, start: start, prefix: prefix)
        let block = probs + h * layout.attentionSize + layout.attentionOffsets[b]
        for t in 0..<n {
            let p = block + t * m, last = start + t
            let qt = q[h].row(r0 + t)
            var maxScore = -Float.infinity
            for u in 0...last {
                let s = dot(qt, context.key(u), headDim) * scale
                p[u] = s
                maxScore = max(maxScore, s)
            }
            var total: Float = 0
            var u = 0
            while u + 16 <= last + 1 {
                let e = vectorExp(load(p + u) - Vec(repeating: maxScore))
                store(p + u, e)
                total += e.sum()
                u += 16
            }
            while u <= last {
                let e = expf(p[u] - maxScore)
                p[u] = e
                total += e
                u += 1
            }
            let inverse = 1 / total
            for u in 0...last { p[u] *= inverse }
            for u in (last + 1)..<m { p[u] = 0 }
            let o = out[h].row(r0 + t)
            o.update(repeating: 0, count: headDim)
            for u in 0...last { axpy(o, p[u], context.value(u), headDim) }
        }
    }
}

/// Gradients of `attentionForward`'s query, key and value inputs, accumulated (overwritten when
/// `accumulate` is false).
///
/// Every head must have its own `dq`, `dk` and `dv` views (heads run in parallel); with grouped-query
/// attention sum the per-head key/value gradients of a group afterwards. A prefix's keys and values
/// get no gradient.
///
/// - Parameters:
///   - dq, dk, dv: per head `[rows, headDim]` views, accumulated into
///   - dout: per head `[rows, headDim]` gradient of the output
///   - probs: `[heads, layout.attentionSize]` from the forward pass
///   - q, k, v: per head `[rows, headDim]` forward inputs
///   - prefix: the forward pass's prefix keys and values (when `layout` has starts)
///   - heads: the heads to compute (nil: all); the others' `dq`, `dk` and `dv` are left as they are, and
///     their forward values are not read (heads the forward pass did not compute)
public func attentionBackward(
    _ dq: [HeadSlice], _ dk: [HeadSlice], _ dv: [HeadSlice],
    _ dout: [HeadSlice], _ probs: UnsafePointer<Float>,
    _ q: [HeadSlice], _ k: [HeadSlice], _ v: [HeadSlice],
    _ layout: SequenceLayout, prefix: AttentionPrefix? = nil, scale: Float, _ headDim: Int, accumulate: Bool = true, heads: [Int]? = nil
) {
    let heads = heads ?? Array(q.indices)
    parallelFor(layout.count * heads.count) { item in
        let b = item / heads.count, h = heads[item % heads.count]
        let n = layout.lengths[b], r0 = layout.offsets[b], start = layout.starts[b], m = start + n
        let context = ContextRows(k[h], v[h], firstRow: r0, head: h, example: b, start: start, prefix: prefix)
        let block = probs + h * layout.attentionSize + layout.attentionOffsets[b]
        if !accumulate {
            for t in r0..<(r0 + n) {
                dq[h].row(t).update(repeating: 0, count: headDim)
                dk[h].row(t).update(repeating: 0, count: headDim)
                dv[h].row(t).update(repeating: 0, count: headDim)
            }
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: m) { scratch in
            let ds = scratch.baseAddress!
            for t in 0..<n {
                let p = block + t * m, last = start + t
                let g = dout[h].row(r0 + t)
                // dp_u = g·v_u; ds_u = p_u (dp_u − Σ p dp)
                var weighted: Float = 0
                for u in 0...last {
                    let dp = dot(g, context.value(u), headDim)
                    ds[u] = dp
                    weighted += p[u] * dp
                }
                let dqt = dq[h].row(r0 + t), qt = q[h].row(r0 + t)
                for u in 0..<start { axpy(dqt, p[u] * (ds[u] - weighted) * scale, context.key(u), headDim) }
                for u in start...last {
                    let d = p[u] * (ds[u] - weighted) * scale
                    axpy(dqt, d, context.key(u), headDim)
                    axpy(dk[h].row(r0 + u - start), d, qt, headDim)
                    axpy(dv[h].row(r0 + u - start), p[u], g, headDim)
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

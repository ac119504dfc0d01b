import Foundation
import Kernels

/// Inputs that replace the shared residual stream for some receivers of one block (edge patching).
///
/// Each non-nil pointer is a `[T, d]` input that only that receiver reads: it is normalized on its
/// own and projected with only that head's (or the MLP's) weights, as with TransformerLens'
/// `use_split_qkv_input`. The residual stream itself is unchanged.
public struct ReceiverInputs {
    /// Per head, the input of its query.
    public var q: [UnsafePointer<Float>?]
    /// Per head, the input of its key (its group's key projection is applied to it).
    public var k: [UnsafePointer<Float>?]
    /// Per head, the input of its value.
    public var v: [UnsafePointer<Float>?]

    /// No replaced inputs, for a model with `heads` heads.
    public init(heads: Int) {
        q = Array(repeating: nil, count: heads)
        k = q
        v = q
    }

    /// The replaced input of `port` of head `head`.
    public subscript(head: Int, port: QKV) -> UnsafePointer<Float>? {
        get {
            switch port {
            case .q: return q[head]
            case .k: return k[head]
            case .v: return v[head]
            }
        }
        set {
            switch port {
            case .q: q[head] = newValue
            case .k: k[head] = newValue
            case .v: v[head] = newValue
            }
        }
    }
}

/// A key or value projection of one replaced input for one key/value group, shared by the group's
/// heads that read that input.
private struct SharedProjection: Hashable {
    let input: UnsafePointer<Float>
    let group: Int
    let values: Bool
}

/// A batch the model cannot run, with the reason.
public struct ModelInputError: Error, CustomStringConvertible {
    public let description: String

    /// Creates the error.
    public init(_ description: String) { self.description = description }
}

extension TransformerModel {
    /// Checks a batch of token sequences fits the model (each after a prefix of `prefixLengths[b]` tokens, if given).
    public func validate(_ tokens: [[Int]], prefixLengths: [Int]? = nil) throws {
        guard !tokens.isEmpty else { throw ModelInputError("empty batch") }
        if let prefixLengths, prefixLengths.count != tokens.count {
            throw ModelInputError("\(tokens.count) sequences continue \(prefixLengths.count) prefixes")
        }
        for (b, sequence) in tokens.enumerated() {
            guard !sequence.isEmpty else { throw ModelInputError("example \(b) has no tokens") }
            let total = sequence.count + (prefixLengths?[b] ?? 0)
            guard total <= config.contextLength else {
                throw ModelInputError("example \(b) has \(total) tokens; the model's context is \(config.contextLength)")
            }
            if let bad = sequence.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
                throw ModelInputError("example \(b) has token id \(bad), outside the vocabulary of \(config.vocabularySize)")
            }
        }
    }

    /// The `input` sender: `out[r] = wte[token] (+ wpe[position])`.
    ///
    /// - Parameters:
    ///   - out: `[T, d]`
    ///   - tokens: `[T]` packed as `layout` says
    public func embed(_ out: UnsafeMutablePointer<Float>, tokens: [Int], layout: SequenceLayout) {
        embeddingForward(out, tokens, tokenEmbedding.pointer, positionEmbedding?.pointer, layout.positions,
                         layout.rows, config.dModel)
    }

    /// The model's norm (LayerNorm or RMSNorm) over `rows` rows of width `d`.
    ///
    /// - Parameters:
    ///   - out: `[rows, d]`
    ///   - mean, rstd: `[rows]`
    ///   - inp: `[rows, d]`
    func normForward(
        _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
        _ inp: UnsafePointer<Float>, weight: FloatBuffer, bias: FloatBuffer?, _ rows: Int
    ) {
        switch config.norm {
        case .layerNorm:
            layerNormForward(out, mean, rstd, inp, weight.pointer, bias!.pointer, eps: config.normEps, rows, config.dModel)
        case .rmsNorm:
            rmsNormForward(out, rstd, inp, weight.pointer, eps: config.normEps, rows, config.dModel)
        }
    }

    /// Input gradient of `normForward`, accumulated into `dinp` (overwritten, possibly in place over
    /// `dout`, when `accumulate` is false).
    ///
    /// - Parameters:
    ///   - dinp: `[rows, d]`, accumulated into
    ///   - dout: `[rows, d]`
    ///   - inp: `[rows, d]` forward input
    ///   - mean, rstd: `[rows]` from the forward pass
    func normBackward(
        _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
        weight: FloatBuffer, _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ rows: Int, accumulate: Bool = true
    ) {
        switch config.norm {
        case .layerNorm: layerNormBackward(dinp, dout, inp, weight.pointer, mean, rstd, rows, config.dModel, accumulate: accumulate)
        case .rmsNorm: rmsNormBackward(dinp, dout, inp, weight.pointer, rstd, rows, config.dModel, accumulate: accumulate)
        }
    }

    /// Attention half of block `layer`: reads `acts.residPre`, writes `q`, `k`, `v`, `probs`, `z`, `residMid`.
    ///
    /// - Parameters:
    ///   - prefix: the keys and values of the positions before each example's start (a layout with starts)
    ///   - inputs: receivers whose input differs from `acts.residPre` (edge patching), or nil
    ///   - headOutputs: `[heads, T, d]` to receive every head's output (the `a{l}.h{h}` senders), or nil
    ///   - keepOwnActivations: keep what the replaced inputs gave (norm statistics, own keys and values) in
    ///     `acts.ownActivations`, for the backward pass
    ///   - replaced: per head, whether `replaceOutputs` writes its whole output (a node removed whole): it is
    ///     not computed, nor are the query, key and value columns only such heads read (needs `headOutputs`)
    ///   - replaceOutputs: overwrites the replaced rows of `headOutputs` before they are summed into the stream
    public func attentionForward(
        layer: Int, _ acts: LayerActivations, layout: SequenceLayout, prefix: AttentionPrefix? = nil, inputs: ReceiverInputs? = nil,
        headOutputs: UnsafeMutablePointer<Float>? = nil, keepOwnActivations: Bool = false, replaced: [Bool]? = nil,
        replaceOutputs: ((UnsafeMutablePointer<Float>) -> Void)? = nil
    ) {
        let c = config, w = blocks[layer], t = layout.rows, d = c.dModel, dh = c.headDim
        let qWidth = c.qWidth, stride = c.qkvWidth, rope = self.rope?.covering(layout)
        let computed = (0..<c.heads).filter { replaced?[$0] != true }
        precondition(computed.count == c.heads || headOutputs != nil, "replaced heads are written into the head outputs")
        if !computed.isEmpty {
            normForward(acts.norm1.pointer, acts.norm1Mean.pointer, acts.norm1Rstd.pointer, acts.residPre.pointer,
                        weight: w.norm1Weight, bias: w.norm1Bias, t)
            projectQKV(layer: layer, acts, heads: computed, t)
        }
        let q = acts.qkv.pointer, k = q + qWidth, v = k + c.kvWidth

        let qSlices = (0..<c.heads).map { HeadSlice(q + $0 * dh, stride: stride) }
        var kSlices = (0..<c.heads).map { HeadSlice(k + ($0 / c.groupSize) * dh, stride: stride) }
        var vSlices = (0..<c.heads).map { HeadSlice(v + ($0 / c.groupSize) * dh, stride: stride) }
        // Buffers for heads whose key/value input is their own; kept alive until attention has run.
        var ownKV: [FloatBuffer] = []
        acts.ownActivations = nil
        if let inputs {
            let own = keepOwnActivations ? OwnReceiverActivations(heads: c.heads, rows: t, headDim: dh) : nil
            acts.ownActivations = own
            let normed = FloatBuffer(uninitializedCount: t * d)
            let scratchMean = FloatBuffer(uninitializedCount: t), scratchRstd = FloatBuffer(uninitializedCount: t)
            // An input several ports read (the corrupted stream, for receivers whose edges are all corrupted) is
            // normalized once, and its key and value projections are shared by the heads of a group. Each port's
            // projection is the same product as on its own, so results do not depend on the sharing. Not when
            // inputs are kept for the backward pass, which keeps each receiver's own normalization.
            let inputCounts = own == nil ? Dictionary((inputs.q + inputs.k + inputs.v).compactMap { $0 }.map { ($0, 1) }, uniquingKeysWith: +) : [:]
            var normalizedInputs: [UnsafePointer<Float>: FloatBuffer] = [:]
            var sharedKV: [SharedProjection: HeadSlice] = [:]
            /// Receiver `i`'s input `x`, normalized.
            func normalize(_ x: UnsafePointer<Float>, receiver i: Int) -> UnsafePointer<Float> {
                if let done = normalizedInputs[x] { return UnsafePointer(done.pointer) }
                let shared = inputCounts[x, default: 1] > 1
                let out = shared ? FloatBuffer(uninitializedCount: t * d) : normed
                let (mean, rstd) = own?.statistics(receiver: i) ?? (scratchMean, scratchRstd)
                normForward(out.pointer, mean.pointer, rstd.pointer, x, weight: w.norm1Weight, bias: w.norm1Bias, t)
                if shared { normalizedInputs[x] = out }
                return UnsafePointer(out.pointer)
            }
            /// Normalizes receiver `i`'s input `x` and projects it with rows `row0 ..< row0 + dh` of
            /// `weight` into `out` (row stride `ldc`).
            func project(_ x: UnsafePointer<Float>, receiver i: Int, _ weight: FloatBuffer, _ bias: FloatBuffer?, row0: Int,
                         into out: UnsafeMutablePointer<Float>, ldc: Int) {
                gemm(out, ldc: ldc, normalize(x, receiver: i), lda: d, transposeA: false, weight.pointer + row0 * d, ldb: d,
                     transposeB: true, accumulate: false, t, dh, d)
                if let bias { addBias(out, bias.pointer + row0, t, dh, rowStride: ldc) }
            }
            /// Head `h`'s own key (`values` false) or value input `x`, projected with its group's rows
            /// (keys rotated), or the projection another head of the group already made of that input.
            func ownProjection(_ x: UnsafePointer<Float>, head h: Int, values: Bool) -> HeadSlice {
                let g = h / c.groupSize, key = SharedProjection(input: x, group: g, values: values)
                if let shared = sharedKV[key] { return shared }
                let out = own?.ownKV(head: h, values: values) ?? FloatBuffer(uninitializedCount: t * dh)
                project(x, receiver: 3 * h + (values ? 2 : 1), values ? w.wv : w.wk, values ? w.bv : w.bk, row0: g * dh,
                        into: out.pointer, ldc: dh)
                if !values, let rope { ropeForward(out.pointer, out.pointer, rope, layout.positions, ropeStyle, t, 1, dh, rowStride: dh) }
                ownKV.append(out)
                let slice = HeadSlice(out.pointer, stride: dh)
                if inputCounts[x, default: 1] > 1 { sharedKV[key] = slice }
                return slice
            }
            for h in computed {
                if let x = inputs.q[h] { project(x, receiver: 3 * h, w.wq, w.bq, row0: h * dh, into: qSlices[h].pointer, ldc: stride) }
                if let x = inputs.k[h] { kSlices[h] = ownProjection(x, head: h, values: false) }
                if let x = inputs.v[h] { vSlices[h] = ownProjection(x, head: h, values: true) }
            }
        }
        if let rope, !computed.isEmpty {
            ropeForward(q, q, rope, layout.positions, ropeStyle, t, c.heads, dh, rowStride: stride)
            ropeForward(k, k, rope, layout.positions, ropeStyle, t, c.kvHeads, dh, rowStride: stride)
        }
        let zSlices = (0..<c.heads).map { HeadSlice(acts.z.pointer + $0 * dh, stride: qWidth) }
        Kernels.attentionForward(zSlices, acts.probs.pointer, qSlices, kSlices, vSlices, layout, prefix: prefix,
                                 scale: 1 / Float(dh).squareRoot(), dh, heads: computed.count == c.heads ? nil : computed)
        withExtendedLifetime(ownKV) {}

        let mid = acts.residMid.pointer
        if let headOutputs {
            for h in computed {
                gemm(headOutputs + h * t * d, ldc: d, acts.z.pointer + h * dh, lda: qWidth, transposeA: false,
                     w.wo.pointer + h * dh, ldb: qWidth, transposeB: true, accumulate: false, t, d, dh)
            }
            replaceOutputs?(headOutputs)
            addSum(mid, (0..<c.heads).map { UnsafePointer(headOutputs + $0 * t * d) }, t * d, onto: acts.residPre.pointer)
            if let bo = w.bo { addBias(mid, bo.pointer, t, d) }
        } else {
            matmulForward(mid, acts.z.pointer, w.wo.pointer, w.bo?.pointer, t, qWidth, d)
            addSum(mid, [acts.residPre.pointer], t * d)
        }
    }

    /// The fused query, key and value projection of `acts.norm1` into `acts.qkv` (`[T, qkvWidth]`), for
    /// `heads` only: the query columns of those heads and the key and value columns of their groups (all
    /// heads: one product; the other columns are left as they are).
    private func projectQKV(layer: Int, _ acts: LayerActivations, heads: [Int], _ t: Int) {
        let c = config, w = blocks[layer], d = c.dModel, dh = c.headDim, stride = c.qkvWidth
        guard heads.count < c.heads else {
            matmulForward(acts.qkv.pointer, acts.norm1.pointer, w.wqkv.pointer, w.bqkv?.pointer, t, d, stride)
            return
        }
        let groups = Set(heads.map { $0 / c.groupSize }).sorted()
        let columns = heads.map { $0 * dh } + groups.map { c.qWidth + $0 * dh } + groups.map { c.qWidth + c.kvWidth + $0 * dh }
        // Runs of adjacent head-wide column blocks, one product each.
        var runs: [Range<Int>] = []
        for first in columns {
            if let last = runs.last, last.upperBound == first { runs[runs.count - 1] = last.lowerBound..<(first + dh) } else { runs.append(first..<(first + dh)) }
        }
        for run in runs {
            let out = acts.qkv.pointer + run.lowerBound
            gemm(out, ldc: stride, acts.norm1.pointer, lda: d, transposeA: false, w.wqkv.pointer + run.lowerBound * d, ldb: d,
                 transposeB: true, accumulate: false, t, run.count, d)
            if let bias = w.bqkv { addBias(out, bias.pointer + run.lowerBound, t, run.count, rowStride: stride) }
        }
    }

    /// MLP half of block `layer`: normalizes `input` (default `acts.residMid`), runs the MLP into
    /// `mlpOut` (the `m{l}` sender) and writes `residPost = residMid + mlpOut`.
    ///
    /// - Parameters:
    ///   - input: `[T, d]` replaced MLP input (edge patching), or nil
    ///   - mlpOut: `[T, d]`
    ///   - residPost: `[T, d]`; may be `acts.residPre` when activations are not kept
    public func mlpForward(
        layer: Int, _ acts: LayerActivations, layout: SequenceLayout, input: UnsafePointer<Float>? = nil,
        mlpOut: UnsafeMutablePointer<Float>, residPost: UnsafeMutablePointer<Float>
    ) {
        let c = config, w = blocks[layer], t = layout.rows, d = c.dModel
        normForward(acts.norm2.pointer, acts.norm2Mean.pointer, acts.norm2Rstd.pointer, input ?? UnsafePointer(acts.residMid.pointer),
                    weight: w.norm2Weight, bias: w.norm2Bias, t)
        matmulForward(acts.mlpIn.pointer, acts.norm2.pointer, w.wIn.pointer, w.bIn?.pointer, t, d, c.mlpInWidth)
        switch c.mlp {
        case .gelu:
            geluForward(acts.mlpAct.pointer, acts.mlpIn.pointer, t * c.dMLP)
        case .swiglu:
            swigluForward(acts.mlpAct.pointer, acts.mlpIn.pointer, acts.mlpIn.pointer + c.dMLP, t, c.dMLP, inputStride: c.mlpInWidth)
        }
        matmulForward(mlpOut, acts.mlpAct.pointer, w.wDown.pointer, w.bDown?.pointer, t, c.dMLP, d)
        addSum(residPost, [mlpOut], t * d, onto: acts.residMid.pointer)
    }

    /// The `logits` receiver: final norm and unembedding of `rows` of the final residual stream.
    ///
    /// - Parameters:
    ///   - head: receives the gathered rows, their normalization and the logits
    ///   - resid: `[T, d]` final residual stream (or a replaced `logits` input)
    ///   - rows: rows of `resid` to read out
    public func logitsForward(_ head: UnembeddingActivations, resid: UnsafePointer<Float>, rows: [Int]) {
        let d = config.dModel, vocab = config.vocabularySize
        for (i, r) in rows.enumerated() { (head.input.pointer + i * d).update(from: resid + r * d, count: d) }
        normForward(head.normed.pointer, head.mean.pointer, head.rstd.pointer, head.input.pointer,
                    weight: finalNormWeight, bias: finalNormBias, rows.count)
        guard let columns = head.columns else {
            matmulForward(head.logits.pointer, head.normed.pointer, unembedding.pointer, nil, rows.count, d, vocab)
            return
        }
        // Only some columns: their logits, then each written to its place in the row.
        let n = columns.ids.count, some = FloatBuffer(uninitializedCount: rows.count * n)  // [rows, n]
        matmulForward(some.pointer, head.normed.pointer, columns.weight.pointer, nil, rows.count, d, n)
        for i in rows.indices {
            for (j, id) in columns.ids.enumerated() { head.logits[i * vocab + id] = some[i * n + j] }
        }
    }

    /// RoPE pairing of this model's weights (rotary models only).
    var ropeStyle: RoPEStyle {
        if case .rotary(let style, _) = config.positions { return style }
        return .halfSplit
    }
}

/// Vocabulary columns a read-out is restricted to (a metric that reads only some logits).
public struct ReadoutColumns: Sendable {
    /// Token ids.
    public let ids: [Int]
    /// `[ids.count, d]` the unembedding's rows for them.
    let weight: FloatBuffer

    /// The columns `ids` of `model`'s unembedding.
    public init(_ ids: [Int], model: TransformerModel) {
        let d = model.config.dModel
        self.ids = ids
        weight = FloatBuffer(uninitializedCount: ids.count * d)
        for (j, id) in ids.enumerated() { (weight.pointer + j * d).update(from: model.unembedding.pointer + id * d, count: d) }
    }
}

/// The read-out rows of a forward pass: their residual input, its normalization and the logits.
public final class UnembeddingActivations {
    /// `[n, d]` gathered residual rows.
    public let input: FloatBuffer
    /// `[n, d]`
    public let normed: FloatBuffer
    /// `[n]`
    public let mean: FloatBuffer
    /// `[n]`
    public let rstd: FloatBuffer
    /// `[n, vocab]`
    public let logits: FloatBuffer
    /// Columns the read-out computes (nil: all); the other logits are left as they are.
    public var columns: ReadoutColumns?

    /// Buffers for `rows` read-out rows.
    public init(config: TransformerConfig, rows: Int) {
        input = FloatBuffer(uninitializedCount: rows * config.dModel)
        normed = FloatBuffer(uninitializedCount: rows * config.dModel)
        mean = FloatBuffer(uninitializedCount: rows)
        rstd = FloatBuffer(uninitializedCount: rows)
        logits = FloatBuffer(uninitializedCount: rows * config.vocabularySize)
    }
}

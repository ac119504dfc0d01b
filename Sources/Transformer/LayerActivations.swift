import Kernels

/// What one block's forward pass computes.
///
/// A forward pass that will be differentiated keeps one of these per layer; one that won't reuses a
/// single instance for every layer. The buffers the backward pass never reads (`norm1`, `z`,
/// `norm2`, `mlpAct`: they only feed weight gradients) can be shared by every layer's instance.
public final class LayerActivations {
    /// `[T, d]` the block's input residual stream (what every attention receiver reads at α = 0).
    public let residPre: FloatBuffer
    /// `[T, d]` norm of `residPre`.
    public let norm1: FloatBuffer
    /// `[T]` LayerNorm means (unused for RMSNorm).
    public let norm1Mean: FloatBuffer
    /// `[T]`
    public let norm1Rstd: FloatBuffer
    /// `[T, qkvWidth]`: each row holds the queries, keys and values of that token side by side
    /// (`q | k | v`, one fused projection); queries and keys after RoPE.
    public let qkv: FloatBuffer
    /// `[heads, layout.attentionSize]` attention weights.
    public let probs: FloatBuffer
    /// `[T, heads·headDim]` attention output per head, before the output projection.
    public let z: FloatBuffer
    /// `[T, d]` residual stream between attention and MLP (what the MLP receiver reads at α = 0).
    public let residMid: FloatBuffer
    /// `[T, d]` norm of the MLP's input.
    public let norm2: FloatBuffer
    /// `[T]`
    public let norm2Mean: FloatBuffer
    /// `[T]`
    public let norm2Rstd: FloatBuffer
    /// `[T, mlpInWidth]`: the MLP's input projection — `up` before GELU, or `gate | up` for SwiGLU.
    public let mlpIn: FloatBuffer
    /// `[T, dMLP]` input of the down projection.
    public let mlpAct: FloatBuffer
    /// What receivers with their own inputs computed, in a patched run kept for the backward pass;
    /// nil when every attention receiver read the residual stream.
    public internal(set) var ownActivations: OwnReceiverActivations?

    /// Allocates (uninitialized: the forward pass writes every element) buffers for `layout.rows` rows of a model with `config`; with `temporaries`, reuses
    /// its `norm1`, `z`, `norm2` and `mlpAct` instead of allocating them.
    public init(config c: TransformerConfig, layout: SequenceLayout, sharingTemporariesWith temporaries: LayerActivations? = nil) {
        let t = layout.rows
        residPre = FloatBuffer(uninitializedCount: t * c.dModel)
        norm1 = temporaries?.norm1 ?? FloatBuffer(uninitializedCount: t * c.dModel)
        norm1Mean = FloatBuffer(uninitializedCount: t)
        norm1Rstd = FloatBuffer(uninitializedCount: t)
        qkv = FloatBuffer(uninitializedCount: t * c.qkvWidth)
        probs = FloatBuffer(uninitializedCount: c.heads * layout.attentionSize)
        z = temporaries?.z ?? FloatBuffer(uninitializedCount: t * c.qWidth)
        residMid = FloatBuffer(uninitializedCount: t * c.dModel)
        norm2 = temporaries?.norm2 ?? FloatBuffer(uninitializedCount: t * c.dModel)
        norm2Mean = FloatBuffer(uninitializedCount: t)
        norm2Rstd = FloatBuffer(uninitializedCount: t)
        mlpIn = FloatBuffer(uninitializedCount: t * c.mlpInWidth)
        mlpAct = temporaries?.mlpAct ?? FloatBuffer(uninitializedCount: t * c.dMLP)
    }
}

/// What the forward pass computed from the inputs of one block's receivers that read their own copy
/// of the residual stream (edge patching), kept for the backward pass: their norm statistics and own
/// keys and values. The inputs themselves are not kept: the backward pass asks the run's patch for
/// them again (`ForwardPass.patch`), which rebuilds them from the senders' outputs instead of holding
/// `3·heads + 1` more `[T, d]` planes per layer.
///
/// Every buffer is a view into one allocation per kind, made when the block is first patched, so a
/// patched pass allocates a few large blocks instead of hundreds of small ones.
public final class OwnReceiverActivations {
    /// Per attention receiver (index `3·head + port`), `[T]` means of its own input's norm (LayerNorm
    /// only), or nil when it read `residPre` (or its head was not computed).
    var mean: [FloatBuffer?]
    /// Per attention receiver, `[T]` reciprocal standard deviations of its own input's norm, or nil.
    var rstd: [FloatBuffer?]
    /// Per head, `[T, headDim]` keys (after RoPE) projected from its own `<k>` input, or nil.
    var keys: [FloatBuffer?]
    /// Per head, `[T, headDim]` values projected from its own `<v>` input, or nil.
    var values: [FloatBuffer?]
    /// `[2, 3·heads, T]` room for the norm statistics.
    private let statsBlock: FloatBuffer
    /// `[2, heads, T, headDim]` room for own keys and values.
    private let kvBlock: FloatBuffer
    private let rows: Int
    private let headDim: Int

    /// Nothing kept yet, for a block of `heads` heads over `rows` rows.
    init(heads: Int, rows: Int, headDim: Int) {
        mean = Array(repeating: nil, count: 3 * heads)
        rstd = mean
        keys = Array(repeating: nil, count: heads)
        values = keys
        statsBlock = FloatBuffer(uninitializedCount: 2 * 3 * heads * rows)
        kvBlock = FloatBuffer(uninitializedCount: 2 * heads * rows * headDim)
        self.rows = rows
        self.headDim = headDim
    }

    /// Room for the norm statistics of attention receiver `i`'s own input, `[T]` each, kept.
    func statistics(receiver i: Int) -> (mean: FloatBuffer, rstd: FloatBuffer) {
        let receivers = mean.count
        let m = FloatBuffer(viewing: statsBlock, offset: i * rows, count: rows)
        let r = FloatBuffer(viewing: statsBlock, offset: (receivers + i) * rows, count: rows)
        (mean[i], rstd[i]) = (m, r)
        return (m, r)
    }

    /// Room for head `head`'s own keys (`values` false) or values, `[T, headDim]`, kept.
    func ownKV(head: Int, values isValues: Bool) -> FloatBuffer {
        let size = rows * headDim, heads = keys.count
        let buffer = FloatBuffer(viewing: kvBlock, offset: ((isValues ? heads : 0) + head) * size, count: size)
        if isValues { values[head] = buffer } else { keys[head] = buffer }
        return buffer
    }
}

import Kernels

/// Everything one block's forward pass computes that its backward pass reads again.
///
/// A forward pass that will be differentiated keeps one of these per layer; one that won't reuses a
/// single instance for every layer.
public final class LayerActivations {
    /// `[T, d]` the block's input residual stream (what every attention receiver reads at α = 0).
    public let residPre: FloatBuffer
    /// `[T, d]` norm of `residPre`.
    public let norm1: FloatBuffer
    /// `[T]` LayerNorm means (unused for RMSNorm).
    public let norm1Mean: FloatBuffer
    /// `[T]`
    public let norm1Rstd: FloatBuffer
    /// `[T, heads·headDim]` queries, after RoPE.
    public let q: FloatBuffer
    /// `[T, kvHeads·headDim]` keys, after RoPE.
    public let k: FloatBuffer
    /// `[T, kvHeads·headDim]`
    public let v: FloatBuffer
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
    /// `[T, dMLP]` up projection (GPT-2: before GELU).
    public let mlpUp: FloatBuffer
    /// `[T, dMLP]` gate projection (SwiGLU only; empty otherwise).
    public let mlpGate: FloatBuffer
    /// `[T, dMLP]` input of the down projection.
    public let mlpAct: FloatBuffer

    /// Allocates buffers for `layout.rows` rows of a model with `config`.
    public init(config c: TransformerConfig, layout: SequenceLayout) {
        let t = layout.rows
        residPre = FloatBuffer(count: t * c.dModel)
        norm1 = FloatBuffer(count: t * c.dModel)
        norm1Mean = FloatBuffer(count: t)
        norm1Rstd = FloatBuffer(count: t)
        q = FloatBuffer(count: t * c.qWidth)
        k = FloatBuffer(count: t * c.kvWidth)
        v = FloatBuffer(count: t * c.kvWidth)
        probs = FloatBuffer(count: c.heads * layout.attentionSize)
        z = FloatBuffer(count: t * c.qWidth)
        residMid = FloatBuffer(count: t * c.dModel)
        norm2 = FloatBuffer(count: t * c.dModel)
        norm2Mean = FloatBuffer(count: t)
        norm2Rstd = FloatBuffer(count: t)
        mlpUp = FloatBuffer(count: t * c.dMLP)
        mlpGate = FloatBuffer(count: c.mlp == .swiglu ? t * c.dMLP : 0)
        mlpAct = FloatBuffer(count: t * c.dMLP)
    }
}

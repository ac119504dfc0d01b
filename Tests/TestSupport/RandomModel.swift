import Kernels
import Transformer

/// Small random-weight models for tests that need no fixture files.
public enum RandomModel {
    /// A buffer of `count` values drawn uniformly from `center ± spread`.
    public static func buffer(_ count: Int, _ rng: inout SeededRandom, spread: Float = 0.3, center: Float = 0) -> FloatBuffer {
        let b = FloatBuffer(count: count)
        for i in 0..<count { b[i] = center + spread * (2 * rng.nextFloat() - 1) }
        return b
    }

    /// A GPT-2-style config (LayerNorm, learned positions, GELU, biases).
    public static func gpt2Config(layers: Int = 2, heads: Int = 4, dModel: Int = 32, vocab: Int = 64) -> TransformerConfig {
        TransformerConfig(
            architecture: "gpt2", vocabularySize: vocab, contextLength: 32, dModel: dModel, layers: layers, heads: heads,
            kvHeads: heads, headDim: dModel / heads, dMLP: 4 * dModel, norm: .layerNorm, normEps: 1e-5,
            positions: .learned, mlp: .gelu, tiedEmbeddings: true)
    }

    /// A Llama-style config (RMSNorm, RoPE, SwiGLU, grouped-query attention).
    public static func llamaConfig(layers: Int = 2, heads: Int = 4, kvHeads: Int = 2, dModel: Int = 32, vocab: Int = 64,
                                   style: RoPEStyle = .interleaved) -> TransformerConfig {
        TransformerConfig(
            architecture: "llama", vocabularySize: vocab, contextLength: 32, dModel: dModel, layers: layers, heads: heads,
            kvHeads: kvHeads, headDim: dModel / heads, dMLP: 48, norm: .rmsNorm, normEps: 1e-5,
            positions: .rotary(style: style, base: 10000), mlp: .swiglu, tiedEmbeddings: false)
    }

    /// A model with random weights of the given config; biases and norm shifts only where the config has them.
    public static func model(_ c: TransformerConfig, seed: UInt64 = 1) -> TransformerModel {
        var rng = SeededRandom(seed: seed)
        let d = c.dModel
        let layerNorm = c.norm == .layerNorm
        func weights(_ count: Int, _ fanIn: Int) -> FloatBuffer { buffer(count, &rng, spread: 1.5 / Float(fanIn).squareRoot()) }
        func bias(_ count: Int) -> FloatBuffer? { layerNorm ? buffer(count, &rng, spread: 0.1) : nil }
        func normWeight() -> FloatBuffer { buffer(d, &rng, spread: 0.3, center: 1) }
        let blocks = (0..<c.layers).map { _ in
            BlockWeights(
                norm1Weight: normWeight(), norm1Bias: bias(d),
                wq: weights(c.qWidth * d, d), bq: bias(c.qWidth), wk: weights(c.kvWidth * d, d), bk: bias(c.kvWidth),
                wv: weights(c.kvWidth * d, d), bv: bias(c.kvWidth), wo: weights(d * c.qWidth, c.qWidth), bo: bias(d),
                norm2Weight: normWeight(), norm2Bias: bias(d),
                wUp: weights(c.dMLP * d, d), bUp: bias(c.dMLP), wGate: c.mlp == .swiglu ? weights(c.dMLP * d, d) : nil,
                wDown: weights(d * c.dMLP, c.dMLP), bDown: bias(d))
        }
        let embedding = buffer(c.vocabularySize * d, &rng, spread: 1)
        return TransformerModel(
            config: c, tokenEmbedding: embedding,
            positionEmbedding: c.positions == .learned ? buffer(c.contextLength * d, &rng, spread: 0.5) : nil,
            blocks: blocks, finalNormWeight: normWeight(), finalNormBias: bias(d),
            unembedding: c.tiedEmbeddings ? embedding : buffer(c.vocabularySize * d, &rng, spread: 1),
            tokenizer: nil, source: "random")
    }

    /// `count` random sequences with the given lengths.
    public static func batch(lengths: [Int], vocab: Int, seed: UInt64) -> [[Int]] {
        var rng = SeededRandom(seed: seed)
        return lengths.map { n in (0..<n).map { _ in rng.uniform(below: vocab) } }
    }
}

import Foundation
import Kernels

/// Llama's `config.json` (HF transformers `LlamaConfig`), also filled from GGUF metadata.
public struct LlamaConfig: Codable, Sendable, Equatable {
    /// `rope_parameters` as transformers ≥ 5 writes it.
    public struct RopeParameters: Codable, Sendable, Equatable {
        public var ropeTheta: Double?
        public var ropeType: String?

        enum CodingKeys: String, CodingKey {
            case ropeTheta = "rope_theta"
            case ropeType = "rope_type"
        }
    }

    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// nil means `numAttentionHeads` (no grouped-query attention).
    public var numKeyValueHeads: Int?
    /// nil means `hiddenSize / numAttentionHeads`.
    public var headDim: Int?
    public var rmsNormEps: Double?
    /// transformers < 5 keeps the RoPE base here.
    public var ropeTheta: Double?
    public var ropeParameters: RopeParameters?
    /// Present and non-default in long-context variants, which CircuitKit does not support.
    public var ropeScaling: RopeParameters?
    public var maxPositionEmbeddings: Int?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var hiddenAct: String?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeParameters = "rope_parameters"
        case ropeScaling = "rope_scaling"
        case maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act"
    }

    /// The architecture-independent shape, with the given RoPE pairing; fields that are out of
    /// range are refused with their name and value; `path` is the file they come from.
    public func transformerConfig(ropeStyle: RoPEStyle, path: String) throws -> TransformerConfig {
        if let act = hiddenAct, act != "silu" {
            throw ModelFileError(path, "unsupported hidden_act \(quoted(act)) (supported: silu)")
        }
        for scaling in [ropeScaling, ropeParameters] {
            if let type = scaling?.ropeType, type != "default" {
                throw ModelFileError(path, "unsupported rope type \(quoted(type)) (supported: default)")
            }
        }
        typealias Limit = TransformerConfig.Limit
        /// `value` of `field`, checked to lie in `1 ... maximum`.
        func size(_ value: Int, _ field: String, maximum: Int = .max) throws -> Int {
            try TransformerConfig.checkedSize(value, field, maximum: maximum, path: path)
        }
        /// `value` of field `key`, checked to lie in `1 ... maximum`.
        func size(_ value: Int, _ key: CodingKeys, maximum: Int = .max) throws -> Int {
            try size(value, key.rawValue, maximum: maximum)
        }
        let hidden = try size(hiddenSize, .hiddenSize, maximum: Limit.dModel)
        let heads = try size(numAttentionHeads, .numAttentionHeads, maximum: Limit.heads)
        let theta = ropeParameters?.ropeTheta.map { ($0, "rope_parameters.rope_theta") } ?? ropeTheta.map { ($0, "rope_theta") }
        let config = TransformerConfig(
            architecture: "llama", vocabularySize: try size(vocabSize, .vocabSize, maximum: Limit.vocabularySize),
            contextLength: try size(maxPositionEmbeddings ?? 2048, .maxPositionEmbeddings), dModel: hidden,
            layers: try size(numHiddenLayers, .numHiddenLayers, maximum: Limit.layers), heads: heads,
            kvHeads: try size(numKeyValueHeads ?? heads, .numKeyValueHeads, maximum: Limit.heads),
            headDim: try headDim.map { try size($0, .headDim, maximum: Limit.headDim) }
                ?? size(hidden / heads, "hidden_size / num_attention_heads", maximum: Limit.headDim),
            dMLP: try size(intermediateSize, .intermediateSize, maximum: Limit.dMLP), norm: .rmsNorm,
            normEps: try TransformerConfig.checkedPositive(rmsNormEps ?? 1e-6, CodingKeys.rmsNormEps.rawValue, path: path),
            positions: .rotary(style: ropeStyle, base: try TransformerConfig.checkedPositive(theta?.0 ?? 10000, theta?.1 ?? "rope_theta", path: path)),
            mlp: .swiglu, tiedEmbeddings: tieWordEmbeddings ?? false)
        try config.validate(path: path)
        return config
    }

    /// Reads the `llama.*` metadata of a GGUF file, refusing values out of range by their key.
    public init(gguf: GGUFFile) throws {
        let architecture = gguf.metadata["general.architecture"]?.stringValue ?? "(none)"
        guard architecture == "llama" else {
            throw ModelFileError(gguf.path, "unsupported GGUF architecture \(quoted(architecture)) (supported: llama)")
        }
        if let scaling = gguf.metadata["llama.rope.scaling.type"]?.stringValue, scaling != "none" {
            throw ModelFileError(gguf.path, "unsupported rope scaling \(quoted(scaling))")
        }
        typealias Limit = TransformerConfig.Limit
        /// Integer metadata `key`, checked to lie in `1 ... maximum`.
        func size(_ key: String, maximum: Int = .max) throws -> Int {
            try TransformerConfig.checkedSize(gguf.requireInt(key), key, maximum: maximum, path: gguf.path)
        }
        /// Integer metadata `key` checked like `size`, or nil when the file lacks it.
        func optionalSize(_ key: String, maximum: Int) throws -> Int? {
            gguf.metadata[key] == nil ? nil : try size(key, maximum: maximum)
        }
        /// Numeric metadata `key` (or `fallback` when absent), checked to be positive and finite as a Float.
        func positive(_ key: String, default fallback: Double? = nil) throws -> Double {
            let number: Double
            if let fallback, gguf.metadata[key] == nil { number = fallback } else { number = try gguf.requireDouble(key) }
            return Double(try TransformerConfig.checkedPositive(number, key, path: gguf.path))
        }
        let heads = try size("llama.attention.head_count", maximum: Limit.heads)
        let hidden = try size("llama.embedding_length", maximum: Limit.dModel)
        vocabSize = try optionalSize("llama.vocab_size", maximum: Limit.vocabularySize) ?? gguf.requireStrings("tokenizer.ggml.tokens").count
        hiddenSize = hidden
        intermediateSize = try size("llama.feed_forward_length", maximum: Limit.dMLP)
        numHiddenLayers = try size("llama.block_count", maximum: Limit.layers)
        numAttentionHeads = heads
        numKeyValueHeads = try optionalSize("llama.attention.head_count_kv", maximum: Limit.heads) ?? heads
        let rotaryDimensions = try optionalSize("llama.rope.dimension_count", maximum: Limit.headDim)
        headDim = try optionalSize("llama.attention.key_length", maximum: Limit.headDim) ?? rotaryDimensions
        rmsNormEps = try positive("llama.attention.layer_norm_rms_epsilon")
        ropeTheta = try positive("llama.rope.freq_base", default: 10000)
        maxPositionEmbeddings = try size("llama.context_length")
        tieWordEmbeddings = !gguf.contains("output.weight")
        hiddenAct = "silu"
        if let rotaryDimensions, rotaryDimensions != (headDim ?? hidden / heads) {
            throw ModelFileError(gguf.path, "partial rotary embeddings (rope.dimension_count \(rotaryDimensions)) are not supported")
        }
    }
}

extension TransformerModel {
    /// Loads Llama weights from an HF checkpoint (`model.layers.N.self_attn.q_proj.weight`, ...; half-split RoPE).
    /// `configPath` names `config.json` in errors about its fields.
    public static func loadLlama(
        config llama: LlamaConfig, configPath: String, weights: TensorSource, tokenizer: Tokenizer?, source: String
    ) throws -> TransformerModel {
        let c = try llama.transformerConfig(ropeStyle: .halfSplit, path: configPath)
        try c.validate(tokenizer: tokenizer, path: configPath, vocabularyField: LlamaConfig.CodingKeys.vocabSize.rawValue)
        let names = LlamaTensorNames(
            embedding: "model.embed_tokens.weight", finalNorm: "model.norm.weight", unembedding: "lm_head.weight",
            block: { l, part in
                let p = "model.layers.\(l)."
                switch part {
                case .norm1: return p + "input_layernorm.weight"
                case .q: return p + "self_attn.q_proj"
                case .k: return p + "self_attn.k_proj"
                case .v: return p + "self_attn.v_proj"
                case .o: return p + "self_attn.o_proj"
                case .norm2: return p + "post_attention_layernorm.weight"
                case .gate: return p + "mlp.gate_proj"
                case .up: return p + "mlp.up_proj"
                case .down: return p + "mlp.down_proj"
                }
            })
        return try loadLlamaBlocks(config: c, names: names, weights: weights, attentionBias: llama.attentionBias ?? false,
                                   mlpBias: llama.mlpBias ?? false, tokenizer: tokenizer, source: source)
    }

    /// Loads a Llama-architecture GGUF file (interleaved-pair RoPE, as its converter permuted Q/K).
    public static func loadLlama(gguf: GGUFFile, source: String) throws -> TransformerModel {
        let llama = try LlamaConfig(gguf: gguf)
        let c = try llama.transformerConfig(ropeStyle: .interleaved, path: gguf.path)
        let tokenizer = gguf.metadata["tokenizer.ggml.tokens"] == nil ? nil : try Tokenizer(gguf: gguf)
        try c.validate(tokenizer: tokenizer, path: gguf.path, vocabularyField: "llama.vocab_size")
        let names = LlamaTensorNames(
            embedding: "token_embd.weight", finalNorm: "output_norm.weight", unembedding: "output.weight",
            block: { l, part in
                let p = "blk.\(l)."
                switch part {
                case .norm1: return p + "attn_norm.weight"
                case .q: return p + "attn_q"
                case .k: return p + "attn_k"
                case .v: return p + "attn_v"
                case .o: return p + "attn_output"
                case .norm2: return p + "ffn_norm.weight"
                case .gate: return p + "ffn_gate"
                case .up: return p + "ffn_up"
                case .down: return p + "ffn_down"
                }
            })
        let hasBias = gguf.contains("blk.0.attn_q.bias")
        return try loadLlamaBlocks(config: c, names: names, weights: gguf, attentionBias: hasBias, mlpBias: false,
                                   tokenizer: tokenizer, source: source)
    }

    private static func loadLlamaBlocks(
        config c: TransformerConfig, names: LlamaTensorNames, weights: TensorSource, attentionBias: Bool, mlpBias: Bool,
        tokenizer: Tokenizer?, source: String
    ) throws -> TransformerModel {
        let d = c.dModel
        let embedding = try weights.weight(names.embedding, shape: [c.vocabularySize, d])
        var blocks: [BlockWeights] = []
        for l in 0..<c.layers {
            func name(_ part: LlamaTensorNames.Part) -> String { names.block(l, part) }
            func linear(_ part: LlamaTensorNames.Part, _ out: Int, _ inp: Int, bias: Bool) throws -> (FloatBuffer, FloatBuffer?) {
                let w = try weights.weight(name(part) + ".weight", shape: [out, inp])
                return (w, bias ? try weights.weight(name(part) + ".bias", shape: [out]) : nil)
            }
            let (wq, bq) = try linear(.q, c.qWidth, d, bias: attentionBias)
            let (wk, bk) = try linear(.k, c.kvWidth, d, bias: attentionBias)
            let (wv, bv) = try linear(.v, c.kvWidth, d, bias: attentionBias)
            let (wo, bo) = try linear(.o, d, c.qWidth, bias: attentionBias)
            let (wGate, _) = try linear(.gate, c.dMLP, d, bias: false)
            let (wUp, bUp) = try linear(.up, c.dMLP, d, bias: mlpBias)
            let (wDown, bDown) = try linear(.down, d, c.dMLP, bias: mlpBias)
            blocks.append(BlockWeights(
                norm1Weight: try weights.weight(name(.norm1), shape: [d]), norm1Bias: nil,
                wq: wq, bq: bq, wk: wk, bk: bk, wv: wv, bv: bv, wo: wo, bo: bo,
                norm2Weight: try weights.weight(name(.norm2), shape: [d]), norm2Bias: nil,
                wUp: wUp, bUp: bUp, wGate: wGate, wDown: wDown, bDown: bDown))
        }
        let unembedding = c.tiedEmbeddings ? embedding : try weights.weight(names.unembedding, shape: [c.vocabularySize, d])
        return TransformerModel(
            config: c, tokenEmbedding: embedding, positionEmbedding: nil, blocks: blocks,
            finalNormWeight: try weights.weight(names.finalNorm, shape: [d]), finalNormBias: nil,
            unembedding: unembedding, tokenizer: tokenizer, source: source)
    }
}

/// Where a Llama checkpoint format keeps each tensor.
private struct LlamaTensorNames {
    /// A block's tensors; linear layers are named without the `.weight` / `.bias` suffix.
    enum Part { case norm1, q, k, v, o, norm2, gate, up, down }

    let embedding: String
    let finalNorm: String
    let unembedding: String
    let block: (Int, Part) -> String
}

extension Architecture {
    /// Llama from an HF directory (`LlamaForCausalLM`) or a GGUF file.
    static let llama = Architecture(
        modelType: "llama", ggufName: "llama",
        loadDirectory: { config, path, weights, tokenizer, source in
            try TransformerModel.loadLlama(config: decodeConfig(LlamaConfig.self, from: config, path: path), configPath: path,
                                           weights: weights, tokenizer: tokenizer, source: source)
        },
        loadGGUF: { file, source in try TransformerModel.loadLlama(gguf: file, source: source) })
}

import Foundation
import Kernels

/// GPT-2's `config.json` (HF transformers `GPT2Config`).
public struct GPT2Config: Codable, Sendable, Equatable {
    public var vocabSize: Int
    public var nPositions: Int
    public var nEmbd: Int
    public var nLayer: Int
    public var nHead: Int
    /// MLP width; nil means 4 × `nEmbd`.
    public var nInner: Int?
    public var layerNormEpsilon: Double?
    public var activationFunction: String?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case nPositions = "n_positions"
        case nEmbd = "n_embd"
        case nLayer = "n_layer"
        case nHead = "n_head"
        case nInner = "n_inner"
        case layerNormEpsilon = "layer_norm_epsilon"
        case activationFunction = "activation_function"
    }

    /// The architecture-independent shape; rejects activations other than GPT-2's tanh GELU, and
    /// fields that are out of range, with the field's name and value; `path` is `config.json`'s.
    public func transformerConfig(path: String) throws -> TransformerConfig {
        let activation = activationFunction ?? "gelu_new"
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(activation) else {
            throw ModelFileError(path, "unsupported activation_function \(quoted(activation)) (supported: gelu_new)")
        }
        typealias Limit = TransformerConfig.Limit
        /// `value` of field `key`, checked to lie in `1 ... maximum`.
        func size(_ value: Int, _ key: CodingKeys, maximum: Int = .max) throws -> Int {
            try TransformerConfig.checkedSize(value, key.rawValue, maximum: maximum, path: path)
        }
        let d = try size(nEmbd, .nEmbd, maximum: Limit.dModel)
        let heads = try size(nHead, .nHead, maximum: Limit.heads)
        guard d % heads == 0 else {
            throw ModelFileError(path, "invalid config: n_embd \(d) is not a multiple of n_head \(heads)")
        }
        let config = TransformerConfig(
            architecture: "gpt2", vocabularySize: try size(vocabSize, .vocabSize, maximum: Limit.vocabularySize),
            contextLength: try size(nPositions, .nPositions), dModel: d, layers: try size(nLayer, .nLayer, maximum: Limit.layers),
            heads: heads, kvHeads: heads, headDim: d / heads, dMLP: try nInner.map { try size($0, .nInner, maximum: Limit.dMLP) } ?? 4 * d,
            norm: .layerNorm,
            normEps: try TransformerConfig.checkedPositive(layerNormEpsilon ?? 1e-5, CodingKeys.layerNormEpsilon.rawValue, path: path),
            positions: .learned, mlp: .gelu, tiedEmbeddings: true)
        try config.validate(path: path)
        return config
    }
}

extension TransformerModel {
    /// Loads GPT-2 weights from an HF checkpoint (`wte.weight`, `h.0.attn.c_attn.weight`, ... with or
    /// without the `transformer.` prefix). Conv1D weights (`[in, out]`) are transposed to `[out, in]`.
    /// `configPath` names `config.json` in errors about its fields.
    public static func loadGPT2(
        config gpt2: GPT2Config, configPath: String, weights: TensorSource, tokenizer: Tokenizer?, source: String
    ) throws -> TransformerModel {
        let c = try gpt2.transformerConfig(path: configPath)
        try c.validate(tokenizer: tokenizer, path: configPath, vocabularyField: GPT2Config.CodingKeys.vocabSize.rawValue)
        let prefix = weights.contains("transformer.wte.weight") ? "transformer." : ""
        let d = c.dModel
        func tensor(_ name: String, _ shape: [Int]) throws -> FloatBuffer { try weights.weight(prefix + name, shape: shape) }
        /// A Conv1D weight `[inFeatures, outFeatures]` as `[outFeatures, inFeatures]`.
        func conv1D(_ name: String, _ inFeatures: Int, _ outFeatures: Int) throws -> FloatBuffer {
            transposed(try tensor(name, [inFeatures, outFeatures]), rows: inFeatures, cols: outFeatures)
        }

        let wte = try tensor("wte.weight", [c.vocabularySize, d])
        let wpe = try tensor("wpe.weight", [c.contextLength, d])
        var blocks: [BlockWeights] = []
        for l in 0..<c.layers {
            let p = "h.\(l)."
            let qkv = try conv1D(p + "attn.c_attn.weight", d, 3 * d)  // [3d, d]: q rows, then k, then v
            let qkvBias = try tensor(p + "attn.c_attn.bias", [3 * d])
            blocks.append(BlockWeights(
                norm1Weight: try tensor(p + "ln_1.weight", [d]), norm1Bias: try tensor(p + "ln_1.bias", [d]),
                wq: rowSlice(qkv, start: 0, count: d, cols: d), bq: rowSlice(qkvBias, start: 0, count: d, cols: 1),
                wk: rowSlice(qkv, start: d, count: d, cols: d), bk: rowSlice(qkvBias, start: d, count: d, cols: 1),
                wv: rowSlice(qkv, start: 2 * d, count: d, cols: d), bv: rowSlice(qkvBias, start: 2 * d, count: d, cols: 1),
                wo: try conv1D(p + "attn.c_proj.weight", d, d), bo: try tensor(p + "attn.c_proj.bias", [d]),
                norm2Weight: try tensor(p + "ln_2.weight", [d]), norm2Bias: try tensor(p + "ln_2.bias", [d]),
                wUp: try conv1D(p + "mlp.c_fc.weight", d, c.dMLP), bUp: try tensor(p + "mlp.c_fc.bias", [c.dMLP]),
                wGate: nil,
                wDown: try conv1D(p + "mlp.c_proj.weight", c.dMLP, d), bDown: try tensor(p + "mlp.c_proj.bias", [d])))
        }
        return TransformerModel(
            config: c, tokenEmbedding: wte, positionEmbedding: wpe, blocks: blocks,
            finalNormWeight: try tensor("ln_f.weight", [d]), finalNormBias: try tensor("ln_f.bias", [d]),
            unembedding: wte, tokenizer: tokenizer, source: source)
    }
}

extension Architecture {
    /// GPT-2 from an HF directory (no GGUF form).
    static let gpt2 = Architecture(
        modelType: "gpt2", ggufName: nil,
        loadDirectory: { config, path, weights, tokenizer, source in
            try TransformerModel.loadGPT2(config: decodeConfig(GPT2Config.self, from: config, path: path), configPath: path,
                                          weights: weights, tokenizer: tokenizer, source: source)
        },
        loadGGUF: nil)
}

import Kernels

/// The architecture-independent shape of a pre-norm decoder-only transformer.
///
/// Each architecture file (`GPT2.swift`, `Llama.swift`) turns its own `Codable` config into one of
/// these; the forward and backward passes only read this.
public struct TransformerConfig: Sendable, Equatable {
    /// Normalization used before attention, before the MLP and before the unembedding.
    public enum Norm: Sendable, Equatable {
        case layerNorm
        case rmsNorm
    }

    /// How positions enter the model.
    public enum Positions: Sendable, Equatable {
        /// A learned position embedding added to the token embedding (GPT-2).
        case learned
        /// Rotary embeddings applied to queries and keys (Llama).
        case rotary(style: RoPEStyle, base: Float)
    }

    /// The MLP's form.
    public enum MLP: Sendable, Equatable {
        /// `down(gelu_tanh(up(x)))` (GPT-2).
        case gelu
        /// `down(silu(gate(x)) · up(x))` (Llama).
        case swiglu
    }

    /// Family name for display (`gpt2`, `llama`).
    public var architecture: String
    public var vocabularySize: Int
    /// Longest sequence the model accepts.
    public var contextLength: Int
    /// Width of the residual stream.
    public var dModel: Int
    public var layers: Int
    /// Query heads per layer.
    public var heads: Int
    /// Key/value heads per layer (`heads` unless grouped-query attention).
    public var kvHeads: Int
    public var headDim: Int
    /// Hidden width of the MLP.
    public var dMLP: Int
    public var norm: Norm
    public var normEps: Float
    public var positions: Positions
    public var mlp: MLP
    /// Whether the unembedding is the token embedding matrix.
    public var tiedEmbeddings: Bool
    /// Whether the MLP reads the stream after attention or beside it; decides the graph's edges.
    /// The runtime runs sequential blocks only (every architecture we load has them).
    public var blockLayout: BlockLayout

    /// Creates a config; `validate(path:)` checks it.
    public init(
        architecture: String, vocabularySize: Int, contextLength: Int, dModel: Int, layers: Int, heads: Int, kvHeads: Int,
        headDim: Int, dMLP: Int, norm: Norm, normEps: Float, positions: Positions, mlp: MLP, tiedEmbeddings: Bool,
        blockLayout: BlockLayout = .sequential
    ) {
        self.architecture = architecture
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.dModel = dModel
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.dMLP = dMLP
        self.norm = norm
        self.normEps = normEps
        self.positions = positions
        self.mlp = mlp
        self.tiedEmbeddings = tiedEmbeddings
        self.blockLayout = blockLayout
    }

    /// Query heads that share one key/value head.
    public var groupSize: Int { heads / kvHeads }
    /// Width of all query heads together.
    public var qWidth: Int { heads * headDim }
    /// Width of all key (or value) heads together.
    public var kvWidth: Int { kvHeads * headDim }
    /// Width of the fused query, key and value projection's output (`q | k | v`).
    public var qkvWidth: Int { qWidth + 2 * kvWidth }
    /// Width of the MLP's fused input projection: `up` (GELU), or `gate | up` (SwiGLU).
    public var mlpInWidth: Int { mlp == .swiglu ? 2 * dMLP : dMLP }

    /// Checks sizes are consistent; `path` names the source in the error.
    public func validate(path: String) throws {
        func fail(_ message: String) -> ModelFileError { ModelFileError(path, "invalid config: \(message)") }
        guard vocabularySize > 0, dModel > 0, layers > 0, heads > 0, kvHeads > 0, headDim > 0, dMLP > 0, contextLength > 0
        else { throw fail("sizes must be positive") }
        guard blockLayout == .sequential else { throw fail("parallel attention and MLP blocks are not supported yet") }
        guard heads % kvHeads == 0 else { throw fail("\(heads) heads are not a multiple of \(kvHeads) key/value heads") }
        if case .rotary = positions, headDim % 2 != 0 { throw fail("rotary embeddings need an even head size, got \(headDim)") }
    }
}

import Foundation
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

    /// Checks sizes are consistent and the weights fit in this machine's memory; `path` names the
    /// source in the error. The architectures check each field against `Limit` first, by its name.
    public func validate(path: String) throws {
        func fail(_ message: String) -> ModelFileError { ModelFileError(path, "invalid config: \(message)") }
        guard vocabularySize > 0, dModel > 0, layers > 0, heads > 0, kvHeads > 0, headDim > 0, dMLP > 0, contextLength > 0
        else { throw fail("sizes must be positive") }
        guard blockLayout == .sequential else { throw fail("parallel attention and MLP blocks are not supported yet") }
        guard heads % kvHeads == 0 else { throw fail("\(heads) heads are not a multiple of \(kvHeads) key/value heads") }
        if case .rotary = positions, headDim % 2 != 0 { throw fail("rotary embeddings need an even head size, got \(headDim)") }
        let bytes = Self.product(weightCount, MemoryLayout<Float>.size), memory = ProcessInfo.processInfo.physicalMemory
        guard UInt64(bytes) <= memory else {
            /// `count` bytes in gigabytes, one decimal.
            func gigabytes(_ count: some BinaryInteger) -> String { String(format: "%.1f GB", Double(count) / 1e9) }
            let count = weightCount == .max ? "more than 2^63" : "\(weightCount)"
            throw ModelFileError(path, "the model needs about \(gigabytes(bytes)) for its Float32 weights (\(count) parameters), "
                + "more than this machine's \(gigabytes(memory)) of memory")
        }
    }

    /// Checks every id of `tokenizer` indexes a row of the embedding and unembedding;
    /// `vocabularyField` names the vocabulary size as `path` spells it.
    public func validate(tokenizer: Tokenizer?, path: String, vocabularyField: String) throws {
        guard let tokenizer, tokenizer.tokens.count > vocabularySize else { return }
        throw ModelFileError(path, "the tokenizer has \(tokenizer.tokens.count) tokens, more than \(vocabularyField) \(vocabularySize) "
            + "(its ids must index the embedding's rows)")
    }

    /// How many Float32 weights the model's matrices hold, saturating at `Int.max` (the 1-D norm
    /// and bias vectors are left out: this is for a memory estimate).
    var weightCount: Int {
        let embeddings = Self.product(vocabularySize, dModel, tiedEmbeddings ? 1 : 2)
        let learnedPositions = positions == .learned ? Self.product(contextLength, dModel) : 0
        let attention = Self.product(Self.sum(Self.product(2, heads), Self.product(2, kvHeads)), headDim, dModel)
        let mlpMatrices = Self.product(mlp == .swiglu ? 3 : 2, dMLP, dModel)
        let block = Self.sum(attention, mlpMatrices)
        return Self.sum(Self.sum(embeddings, learnedPositions), Self.product(block, layers))
    }

    /// The product of `factors`, or `Int.max` when it overflows.
    private static func product(_ factors: Int...) -> Int {
        var product = 1
        for factor in factors {
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            if overflow { return .max }
            product = next
        }
        return product
    }

    /// `a + b`, or `Int.max` when it overflows.
    private static func sum(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? .max : sum
    }
}

extension TransformerConfig {
    /// The largest sizes a model file may give: far beyond any real model, and small enough that
    /// the widths computed from them (`heads × headDim`, `2 × dMLP`, …) cannot overflow.
    public enum Limit {
        public static let vocabularySize = 1 << 24
        public static let dModel = 1 << 17
        public static let layers = 1 << 12
        public static let heads = 1 << 12
        public static let headDim = 1 << 12
        public static let dMLP = 1 << 20
    }

    /// `value` of size field `field` of `path`, after checking it lies in `1 ... maximum`.
    static func checkedSize(_ value: Int, _ field: String, maximum: Int = .max, path: String) throws -> Int {
        guard value >= 1, value <= maximum else {
            throw ModelFileError.badField(path, field, value, expected: "an integer from 1 to \(maximum)")
        }
        return value
    }

    /// `value` of field `field` of `path` as a Float, after checking it is positive and finite.
    static func checkedPositive(_ value: Double, _ field: String, path: String) throws -> Float {
        let float = Float(value)
        guard float.isFinite, float > 0 else {
            throw ModelFileError.badField(path, field, value, expected: "a positive finite number")
        }
        return float
    }
}

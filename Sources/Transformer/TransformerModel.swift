import Foundation
import Kernels
import Synchronization

/// One transformer block's weights, every matrix in `[out, in]` layout (PyTorch `Linear`).
public struct BlockWeights: Sendable {
    /// `[d]` scale of the norm before attention.
    public var norm1Weight: FloatBuffer
    /// `[d]` shift of that norm (LayerNorm only).
    public var norm1Bias: FloatBuffer?
    /// `[heads·headDim, d]`
    public var wq: FloatBuffer
    /// `[heads·headDim]`
    public var bq: FloatBuffer?
    /// `[kvHeads·headDim, d]`
    public var wk: FloatBuffer
    /// `[kvHeads·headDim]`
    public var bk: FloatBuffer?
    /// `[kvHeads·headDim, d]`
    public var wv: FloatBuffer
    /// `[kvHeads·headDim]`
    public var bv: FloatBuffer?
    /// `[d, heads·headDim]`
    public var wo: FloatBuffer
    /// `[d]`
    public var bo: FloatBuffer?
    /// `[d]` scale of the norm before the MLP.
    public var norm2Weight: FloatBuffer
    /// `[d]` (LayerNorm only)
    public var norm2Bias: FloatBuffer?
    /// `[dMLP, d]` GPT-2 `c_fc`, Llama `up_proj`.
    public var wUp: FloatBuffer
    /// `[dMLP]`
    public var bUp: FloatBuffer?
    /// `[dMLP, d]` Llama `gate_proj` (SwiGLU only).
    public var wGate: FloatBuffer?
    /// `[d, dMLP]` GPT-2 `mlp.c_proj`, Llama `down_proj`.
    public var wDown: FloatBuffer
    /// `[d]`
    public var bDown: FloatBuffer?
    /// `[qkvWidth, d]`: `wq`, `wk` and `wv` stacked, so one GEMM projects all three (they are views into it).
    public let wqkv: FloatBuffer
    /// `[qkvWidth]` stacked biases, when the block has them.
    public let bqkv: FloatBuffer?
    /// `[mlpInWidth, d]`: `wGate` over `wUp` for SwiGLU (views into it), `wUp` itself for GELU.
    public let wIn: FloatBuffer
    /// `[mlpInWidth]` bias of the MLP's input projection (zeros for the gate), when it has one.
    public let bIn: FloatBuffer?

    /// Creates a block from its tensors, stacking the query/key/value and gate/up projections.
    public init(
        norm1Weight: FloatBuffer, norm1Bias: FloatBuffer?, wq: FloatBuffer, bq: FloatBuffer?, wk: FloatBuffer,
        bk: FloatBuffer?, wv: FloatBuffer, bv: FloatBuffer?, wo: FloatBuffer, bo: FloatBuffer?,
        norm2Weight: FloatBuffer, norm2Bias: FloatBuffer?, wUp: FloatBuffer, bUp: FloatBuffer?, wGate: FloatBuffer?,
        wDown: FloatBuffer, bDown: FloatBuffer?
    ) {
        self.norm1Weight = norm1Weight
        self.norm1Bias = norm1Bias
        self.wq = wq
        self.bq = bq
        self.wk = wk
        self.bk = bk
        self.wv = wv
        self.bv = bv
        self.wo = wo
        self.bo = bo
        self.norm2Weight = norm2Weight
        self.norm2Bias = norm2Bias
        self.wUp = wUp
        self.bUp = bUp
        self.wGate = wGate
        self.wDown = wDown
        self.bDown = bDown
        let (fusedQKV, qkvViews) = stacked([wq, wk, wv])
        (wqkv, self.wq, self.wk, self.wv) = (fusedQKV, qkvViews[0], qkvViews[1], qkvViews[2])
        if let bq, let bk, let bv {
            let (fused, views) = stacked([bq, bk, bv])
            (bqkv, self.bq, self.bk, self.bv) = (fused, views[0], views[1], views[2])
        } else {
            bqkv = nil
        }
        if let wGate {
            let (fused, views) = stacked([wGate, wUp])
            (wIn, self.wGate, self.wUp) = (fused, views[0], views[1])
            if let bUp {
                let (fusedBias, biasViews) = stacked([FloatBuffer(count: bUp.count), bUp])
                (bIn, self.bUp) = (fusedBias, biasViews[1])
            } else {
                bIn = nil
            }
        } else {
            (wIn, bIn) = (wUp, bUp)
        }
    }
}

/// One buffer holding `parts` back to back, and a view into it for each part.
private func stacked(_ parts: [FloatBuffer]) -> (FloatBuffer, [FloatBuffer]) {
    let fused = FloatBuffer(uninitializedCount: parts.reduce(0) { $0 + $1.count })
    var offset = 0
    var views: [FloatBuffer] = []
    for part in parts {
        (fused.pointer + offset).update(from: part.pointer, count: part.count)
        views.append(FloatBuffer(viewing: fused, offset: offset, count: part.count))
        offset += part.count
    }
    return (fused, views)
}

/// A loaded decoder-only transformer: config, Float32 weights and (when the files have one) a tokenizer.
public final class TransformerModel: Sendable {
    public let config: TransformerConfig
    /// `[vocab, d]`
    public let tokenEmbedding: FloatBuffer
    /// `[contextLength, d]` (learned positions only)
    public let positionEmbedding: FloatBuffer?
    public let blocks: [BlockWeights]
    /// `[d]`
    public let finalNormWeight: FloatBuffer
    /// `[d]` (LayerNorm only)
    public let finalNormBias: FloatBuffer?
    /// `[vocab, d]`; the same buffer as `tokenEmbedding` when tied.
    public let unembedding: FloatBuffer
    /// The model's tokenizer, if its files carry one.
    public let tokenizer: Tokenizer?
    /// Where the model came from (a path or cache name), for reports.
    public let source: String
    /// Rotary tables, built for the positions runs reach (rotary models only).
    let rope: RoPETables?
    /// The model's computational graph: sender, receiver and edge numbering.
    public let graph: CircuitGraph

    /// Assembles a model; shapes are assumed checked by the loader.
    public init(
        config: TransformerConfig, tokenEmbedding: FloatBuffer, positionEmbedding: FloatBuffer?, blocks: [BlockWeights],
        finalNormWeight: FloatBuffer, finalNormBias: FloatBuffer?, unembedding: FloatBuffer, tokenizer: Tokenizer?,
        source: String
    ) {
        self.config = config
        self.tokenEmbedding = tokenEmbedding
        self.positionEmbedding = positionEmbedding
        self.blocks = blocks
        self.finalNormWeight = finalNormWeight
        self.finalNormBias = finalNormBias
        self.unembedding = unembedding
        self.tokenizer = tokenizer
        self.source = source
        graph = CircuitGraph(config: config)
        if case .rotary(_, let base) = config.positions {
            rope = RoPETables(headDim: config.headDim, base: base, contextLength: config.contextLength)
        } else {
            rope = nil
        }
    }

    /// Number of parameters (tied matrices counted once).
    public var parameterCount: Int {
        var total = tokenEmbedding.count + (positionEmbedding?.count ?? 0) + finalNormWeight.count + (finalNormBias?.count ?? 0)
        if !config.tiedEmbeddings { total += unembedding.count }
        for b in blocks {
            let buffers: [FloatBuffer?] = [
                b.norm1Weight, b.norm1Bias, b.wq, b.bq, b.wk, b.bk, b.wv, b.bv, b.wo, b.bo, b.norm2Weight, b.norm2Bias,
                b.wUp, b.bUp, b.wGate, b.wDown, b.bDown,
            ]
            total += buffers.reduce(0) { $0 + ($1?.count ?? 0) }
        }
        return total
    }
}

/// A model's rotary table, grown on demand to the positions a run reaches, so a context length
/// a config claims (up to 2^62) costs nothing until sequences that long are run.
final class RoPETables: Sendable {
    private let headDim: Int
    private let base: Float
    private let contextLength: Int
    private let table: Mutex<RoPETable>

    /// No positions yet; `contextLength` caps how far a growing table reaches ahead.
    init(headDim: Int, base: Float, contextLength: Int) {
        self.headDim = headDim
        self.base = base
        self.contextLength = contextLength
        table = Mutex(RoPETable(headDim: headDim, positions: 0, base: base))
    }

    /// A table covering every position of `layout`.
    func covering(_ layout: SequenceLayout) -> RoPETable {
        let needed = (layout.positions.max() ?? -1) + 1
        return table.withLock { table in
            if table.positions < needed {
                // Doubling keeps rebuilds few; entries do not depend on the table's size.
                table = RoPETable(headDim: headDim, positions: max(needed, min(2 * table.positions, contextLength)), base: base)
            }
            return table
        }
    }
}

/// `[cols, rows]` copy of a row-major `[rows, cols]` matrix (GPT-2's Conv1D stores `[in, out]`).
func transposed(_ m: FloatBuffer, rows: Int, cols: Int) -> FloatBuffer {
    let out = FloatBuffer(count: rows * cols)
    parallelChunks(cols, minimumChunk: 64) { range in
        for c in range {
            for r in 0..<rows { out.pointer[c * rows + r] = m.pointer[r * cols + c] }
        }
    }
    return out
}

/// Rows `start ..< start + count` of a row-major matrix with `cols` columns, as a new buffer.
func rowSlice(_ m: FloatBuffer, start: Int, count: Int, cols: Int) -> FloatBuffer {
    let out = FloatBuffer(count: count * cols)
    out.pointer.update(from: m.pointer + start * cols, count: count * cols)
    return out
}

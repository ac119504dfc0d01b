import Kernels

/// Which rows of a forward pass to read logits out at.
public enum ReadoutRows: Sendable {
    /// Each example's last token.
    case last
    /// Every token.
    case all
    /// The given packed rows.
    case rows([Int])
    /// No logits (a pass run only for its activations or sender outputs).
    case none
}

/// The result of running the model on a batch: logits at the read-out rows and, on request, every
/// block's activations (for the backward pass) and every sender's output (for patching).
public final class ForwardPass {
    /// How the batch's examples are packed into rows.
    public let layout: SequenceLayout
    /// `[T]` packed token ids.
    public let tokens: [Int]
    /// One entry per block when activations were kept, else empty.
    public let layers: [LayerActivations]
    /// `[senderCount, T, d]` sender outputs in topological order (`Sender.index(heads:)`), when captured.
    public let senders: FloatBuffer?
    /// `[T, d]` residual stream after the last block.
    public let residFinal: FloatBuffer
    /// Read-out rows of `residFinal`.
    public let readoutRows: [Int]
    /// Final norm and logits at the read-out rows.
    public let readout: UnembeddingActivations

    init(layout: SequenceLayout, tokens: [Int], layers: [LayerActivations], senders: FloatBuffer?,
         residFinal: FloatBuffer, readoutRows: [Int], readout: UnembeddingActivations) {
        self.layout = layout
        self.tokens = tokens
        self.layers = layers
        self.senders = senders
        self.residFinal = residFinal
        self.readoutRows = readoutRows
        self.readout = readout
    }

    /// `[readoutRows.count, vocab]` logits.
    public var logits: FloatBuffer { readout.logits }
}

extension TransformerModel {
    /// Senders in the computational graph: `input`, then per layer its heads and its MLP.
    public var senderCount: Int { 1 + config.layers * (config.heads + 1) }

    /// Runs the model on a batch of token sequences of any lengths (each ≤ the context length).
    ///
    /// - Parameters:
    ///   - readout: rows to compute logits at
    ///   - keepActivations: keep every block's activations (needed by `backward`)
    ///   - captureSenders: record every sender's output in `ForwardPass.senders`
    ///   - inputEmbedding: `[T, d]` to use instead of the embedding of `tokens` (EAP-IG interpolation)
    public func forward(
        _ batch: [[Int]], readout: ReadoutRows = .last, keepActivations: Bool = false, captureSenders: Bool = false,
        inputEmbedding: UnsafePointer<Float>? = nil
    ) throws -> ForwardPass {
        try validate(batch)
        let layout = SequenceLayout(lengths: batch.map(\.count))
        let tokens = batch.flatMap { $0 }
        let t = layout.rows, d = config.dModel, plane = t * d
        let senders = captureSenders ? FloatBuffer(uninitializedCount: senderCount * plane) : nil
        let first = LayerActivations(config: config, layout: layout)
        let layers = keepActivations
            ? [first] + (1..<config.layers).map { _ in LayerActivations(config: config, layout: layout, sharingTemporariesWith: first) }
            : [first]
        let mlpScratch = senders == nil ? FloatBuffer(uninitializedCount: plane) : nil
        let residFinal = FloatBuffer(uninitializedCount: plane)

        let input = first.residPre.pointer
        if let inputEmbedding { input.update(from: inputEmbedding, count: plane) } else { embed(input, tokens: tokens, layout: layout) }
        if let senders { senders.pointer.update(from: input, count: plane) }

        for l in 0..<config.layers {
            let acts = layers[keepActivations ? l : 0]
            let headOutputs = senders.map { $0.pointer + Sender.head(layer: l, head: 0).index(heads: config.heads) * plane }
            attentionForward(layer: l, acts, layout: layout, headOutputs: headOutputs)
            let mlpOut = senders.map { $0.pointer + Sender.mlp(layer: l).index(heads: config.heads) * plane } ?? mlpScratch!.pointer
            let residPost: UnsafeMutablePointer<Float>
            if l == config.layers - 1 {
                residPost = residFinal.pointer
            } else {
                residPost = keepActivations ? layers[l + 1].residPre.pointer : acts.residPre.pointer
            }
            mlpForward(layer: l, acts, layout: layout, mlpOut: mlpOut, residPost: residPost)
        }

        let rows: [Int]
        switch readout {
        case .last: rows = layout.lastRows
        case .all: rows = Array(0..<t)
        case .rows(let chosen):
            guard chosen.allSatisfy({ $0 >= 0 && $0 < t }) else { throw ModelInputError("read-out row outside the batch's \(t) rows") }
            rows = chosen
        case .none: rows = []
        }
        let head = UnembeddingActivations(config: config, rows: rows.count)
        if !rows.isEmpty { logitsForward(head, resid: residFinal.pointer, rows: rows) }
        return ForwardPass(layout: layout, tokens: tokens, layers: keepActivations ? layers : [], senders: senders,
                           residFinal: residFinal, readoutRows: rows, readout: head)
    }
}

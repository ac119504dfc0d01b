import Kernels

/// Which rows of a forward pass to read logits out at.
public enum ReadoutRows: Sendable {
    /// Each example's last token.
    case last
    /// Every token.
    case all
    /// No logits (a pass run only for its activations or sender outputs).
    case none
}

/// Receiver inputs that differ from the residual stream in a run of the graph (edge patching, design §4).
///
/// A run asks before each block's attention, before its MLP and before the read-out; nil means every
/// receiver there reads the residual stream itself, the unpatched fast path. The backward pass of a run
/// that kept its activations asks again for the inputs of the layers it goes through (`attentionInputs`,
/// `mlpInput`), after the run and before anything changes the patch or the run's senders: the answers
/// are then the inputs the run read (in buffers the patch may reuse from one call to the next).
public protocol ReceiverPatch: AnyObject {
    /// Replaced inputs of block `layer`'s attention receivers; `resid` is the run's `[T, d]` stream
    /// before the block.
    func attentionInputs(layer: Int, resid: UnsafePointer<Float>) -> ReceiverInputs?
    /// Replaced `[T, d]` input of `m{layer}`; `resid` is the stream between the block's attention and MLP.
    func mlpInput(layer: Int, resid: UnsafePointer<Float>) -> UnsafePointer<Float>?
    /// Replaced `[T, d]` input of `logits`; `resid` is the stream after the last block.
    func logitsInput(resid: UnsafePointer<Float>) -> UnsafePointer<Float>?
    /// Whether the patch writes sender `s`'s whole output (`replaceOutputs`): the layer loop then does not
    /// compute it.
    func replacesEverywhere(_ s: Int) -> Bool
    /// Overwrites the rows of `outputs` (`[senders.count, T, d]`, the outputs of `senders`, consecutive
    /// senders of one block) that the patch replaces, before the block adds them to the stream; returns
    /// whether it wrote any.
    @discardableResult
    func replaceOutputs(_ senders: Range<Int>, in outputs: UnsafeMutablePointer<Float>) -> Bool
}

/// The buffers and results of one run of the model over a batch: logits at the read-out rows and,
/// on request, every block's activations (for the backward pass), every sender's output (for
/// patching) and the residual stream at every point.
///
/// `TransformerModel.forward` allocates and runs one; a patching engine allocates one and runs it
/// again and again with `TransformerModel.run`.
public final class ForwardPass {
    /// How the batch's examples are packed into rows.
    public let layout: SequenceLayout
    /// `[T]` packed token ids (empty when the run started from given embeddings).
    public let tokens: [Int]
    /// One entry per block when activations are kept, else empty.
    public let layers: [LayerActivations]
    /// `[senders, T, d]` sender outputs in `CircuitGraph` order, when captured.
    public let senders: FloatBuffer?
    /// `[2·layers + 1, T, d]`: the residual stream before block l (`2l`), between its attention and
    /// MLP (`2l + 1`) and after the last block (`2·layers`), when captured.
    public let residuals: FloatBuffer?
    /// `[layers, T, 2·kvWidth]` every layer's keys (after RoPE) and values, when captured (a
    /// `PrefixCache`'s run).
    public let keysValues: FloatBuffer?
    /// The shared prefixes this run continues from (its layout's starts), or nil.
    public let prefix: PrefixCache?
    /// `[T, d]` residual stream after the last block.
    public let residFinal: FloatBuffer
    /// Read-out rows of `residFinal`.
    public let readoutRows: [Int]
    /// Final norm and logits at the read-out rows.
    public let readout: UnembeddingActivations
    /// The one block's buffers reused by every layer when activations are not kept.
    private let shared: LayerActivations?
    /// `[T, d]` MLP output when sender outputs are not captured.
    let mlpScratch: FloatBuffer?
    /// Blocks of the model.
    private let blockCount: Int
    /// The patch of the last run, when activations are kept: the backward pass asks it again for the
    /// inputs of receivers that read their own (`LayerActivations.ownActivations`).
    public internal(set) var patch: ReceiverPatch?

    /// Allocates (uninitialized) the buffers of a run of `model` over `layout`; a layout with starts
    /// continues from `prefix`.
    public init(
        model: TransformerModel, layout: SequenceLayout, tokens: [Int] = [], readout: ReadoutRows, keepActivations: Bool = false,
        captureSenders: Bool = false, captureResiduals: Bool = false, captureKeysValues: Bool = false, prefix: PrefixCache? = nil
    ) {
        precondition(prefix.map { p in layout.starts.indices.allSatisfy { layout.starts[$0] == p.lengths[$0 % p.lengths.count] } }
                     ?? !layout.continuesPrefixes, "a layout's starts are the lengths of the prefixes it continues from")
        let c = model.config, plane = layout.rows * c.dModel
        self.layout = layout
        self.prefix = prefix
        self.tokens = tokens
        blockCount = c.layers
        let first = LayerActivations(config: c, layout: layout)
        layers = keepActivations
            ? [first] + (1..<c.layers).map { _ in LayerActivations(config: c, layout: layout, sharingTemporariesWith: first) }
            : []
        shared = keepActivations ? nil : first
        senders = captureSenders ? FloatBuffer(uninitializedCount: model.graph.senders.count * plane) : nil
        residuals = captureResiduals ? FloatBuffer(uninitializedCount: (2 * c.layers + 1) * plane) : nil
        keysValues = captureKeysValues ? FloatBuffer(uninitializedCount: c.layers * layout.rows * 2 * c.kvWidth) : nil
        mlpScratch = captureSenders ? nil : FloatBuffer(uninitializedCount: plane)
        residFinal = FloatBuffer(uninitializedCount: plane)
        switch readout {
        case .last: readoutRows = layout.lastRows
        case .all: readoutRows = Array(0..<layout.rows)
        case .none: readoutRows = []
        }
        self.readout = UnembeddingActivations(config: c, rows: readoutRows.count)
    }

    /// `[readoutRows.count, vocab]` logits.
    public var logits: FloatBuffer { readout.logits }

    /// Whether every block keeps its own activations (the backward pass needs them).
    public var keepsActivations: Bool { shared == nil }

    /// The activations block `layer` writes (shared by all blocks when they are not kept).
    public func activations(_ layer: Int) -> LayerActivations { shared ?? layers[layer] }

    /// `[T, d]` where a run starting at block `layer` reads the residual stream entering it
    /// (`residFinal` when `layer` is past the last block).
    public func entry(_ layer: Int) -> UnsafeMutablePointer<Float> {
        layer < blockCount ? activations(layer).residPre.pointer : residFinal.pointer
    }
}

extension TransformerModel {
    /// Runs the model on a batch of token sequences of any lengths (each ≤ the context length).
    ///
    /// - Parameters:
    ///   - readout: rows to compute logits at
    ///   - keepActivations: keep every block's activations (needed by `backward`)
    ///   - captureSenders: record every sender's output in `ForwardPass.senders`
    ///   - captureResiduals: record the residual stream at every point in `ForwardPass.residuals`
    ///   - captureKeysValues: record every layer's keys and values in `ForwardPass.keysValues`
    ///   - inputEmbedding: `[T, d]` to use instead of the embedding of `tokens` (EAP-IG interpolation)
    ///   - patch: receivers whose inputs differ from the residual stream (edge patching), or nil
    ///   - prefix: run each example of `batch` as the continuation of its prefix there (`batch` then
    ///     holds only the tokens after it), or nil
    public func forward(
        _ batch: [[Int]], readout: ReadoutRows = .last, keepActivations: Bool = false, captureSenders: Bool = false,
        captureResiduals: Bool = false, captureKeysValues: Bool = false, inputEmbedding: UnsafePointer<Float>? = nil,
        patch: ReceiverPatch? = nil, prefix: PrefixCache? = nil
    ) throws -> ForwardPass {
        try validate(batch, prefixLengths: prefix?.lengths)
        let layout = SequenceLayout(lengths: batch.map(\.count), starts: prefix?.lengths)
        let tokens = batch.flatMap { $0 }
        let pass = ForwardPass(model: self, layout: layout, tokens: tokens, readout: readout, keepActivations: keepActivations,
                               captureSenders: captureSenders, captureResiduals: captureResiduals, captureKeysValues: captureKeysValues,
                               prefix: prefix)
        let input = pass.activations(0).residPre.pointer
        if let inputEmbedding {
            input.update(from: inputEmbedding, count: layout.rows * config.dModel)
        } else {
            embed(input, tokens: tokens, layout: layout)
        }
        run(pass, patch: patch)
        return pass
    }

    /// Runs blocks `startLayer ..< layers` of `pass` and its read-out: the model's one layer loop, the
    /// same for clean, corrupted and patched runs.
    ///
    /// Before the call, the stream entering `startLayer` is in `pass.activations(startLayer).residPre`
    /// (in `pass.residFinal` when `startLayer == layers`), and a patch that reads senders before
    /// `startLayer` finds them itself; the run writes the senders from `startLayer` on (and `input`
    /// when it starts at 0).
    ///
    /// - Parameters:
    ///   - patch: receivers whose inputs differ from the residual stream, or nil
    public func run(_ pass: ForwardPass, from startLayer: Int = 0, patch: ReceiverPatch? = nil) {
        let c = config, g = graph, layout = pass.layout, plane = layout.rows * c.dModel
        if pass.keepsActivations { pass.patch = patch }
        /// Copies the stream at point `slot` into `pass.residuals`, when they are captured.
        func record(_ slot: Int, _ resid: UnsafePointer<Float>) {
            if let residuals = pass.residuals { (residuals.pointer + slot * plane).update(from: resid, count: plane) }
        }
        if startLayer == 0, c.layers > 0, let senders = pass.senders {
            senders.pointer.update(from: pass.activations(0).residPre.pointer, count: plane)
        }
        for l in startLayer..<c.layers {
            let acts = pass.activations(l)
            record(2 * l, acts.residPre.pointer)
            let heads = g.firstSender(ofLayer: l)..<(g.firstSender(ofLayer: l) + c.heads)
            attentionForward(layer: l, acts, layout: layout, prefix: pass.prefix?.attention(layer: l, layout: layout),
                             inputs: patch?.attentionInputs(layer: l, resid: acts.residPre.pointer),
                             headOutputs: pass.senders.map { $0.pointer + heads.lowerBound * plane },
                             keepOwnActivations: pass.keepsActivations, replaced: patch.map { p in heads.map { p.replacesEverywhere($0) } },
                             replaceOutputs: patch.map { p in { p.replaceOutputs(heads, in: $0) } })
            if let keysValues = pass.keysValues {
                let width = 2 * c.kvWidth, out = keysValues.pointer + l * layout.rows * width
                for r in 0..<layout.rows {
                    (out + r * width).update(from: acts.qkv.pointer + r * c.qkvWidth + c.qWidth, count: width)
                }
            }
            record(2 * l + 1, acts.residMid.pointer)
            let mlp = g.index(of: Sender.mlp(layer: l))
            let mlpOut = pass.senders.map { $0.pointer + mlp * plane } ?? pass.mlpScratch!.pointer
            let residPost: UnsafeMutablePointer<Float>
            if l == c.layers - 1 {
                residPost = pass.residFinal.pointer
            } else {
                residPost = pass.keepsActivations ? pass.layers[l + 1].residPre.pointer : acts.residPre.pointer
            }
            if let patch, patch.replacesEverywhere(mlp) {
                patch.replaceOutputs(mlp..<(mlp + 1), in: mlpOut)
                addSum(residPost, [mlpOut], plane, onto: acts.residMid.pointer)
            } else {
                mlpForward(layer: l, acts, layout: layout, input: patch?.mlpInput(layer: l, resid: acts.residMid.pointer),
                           mlpOut: mlpOut, residPost: residPost)
                // Rows the patch replaces in some copies only: the sum again, with them.
                if let patch, patch.replaceOutputs(mlp..<(mlp + 1), in: mlpOut) { addSum(residPost, [mlpOut], plane, onto: acts.residMid.pointer) }
            }
        }
        record(2 * c.layers, pass.residFinal.pointer)
        if !pass.readoutRows.isEmpty {
            let resid = patch?.logitsInput(resid: pass.residFinal.pointer) ?? UnsafePointer(pass.residFinal.pointer)
            logitsForward(pass.readout, resid: resid, rows: pass.readoutRows)
        }
    }
}

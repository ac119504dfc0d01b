import Foundation
import Kernels
import Transformer

/// Runs a batch of prompt pairs with edges patched (design §4), through the model's own layer loop
/// with a `MaskPatch`.
///
/// The clean run's sender outputs and residual stream are cached, so a run starts at the first
/// layer that has a patched receiver instead of at the embedding.
public final class PatchingEngine {
    public let model: TransformerModel
    public let graph: CircuitGraph
    /// Packing of the batch (clean and corrupt prompts have the same lengths): under resample
    /// ablation, the tokens after each pair's shared prefix, which `prefix` holds.
    public let layout: SequenceLayout
    /// The pairs' shared prefixes, run once, that every run continues from (resample ablation), or nil.
    let prefix: PrefixCache?
    public let ablation: Ablation
    /// `[examples, vocab]` clean logits at each example's last token.
    public let cleanLogits: FloatBuffer
    /// `[examples, vocab]` logits of the corrupted run (resample ablation): the run with every edge
    /// corrupted, which other ablations have to patch for.
    public let corruptLogits: FloatBuffer?
    /// `[senders, T, d]` clean sender outputs.
    let cleanSenders: FloatBuffer
    /// `[senders, T, d]` corrupted sender outputs under `ablation`.
    let corruptSenders: FloatBuffer
    /// `[2·layers + 1, T, d]` the clean run's residual stream at every point (`ForwardPass.residuals`).
    let cleanResiduals: FloatBuffer
    /// The same points of a stream made of corrupted senders: the clean stream plus
    /// `Σ (corrupt_s − clean_s)` over the senders upstream of each point (under resample ablation,
    /// the corrupted run's own stream).
    let corruptResiduals: FloatBuffer
    /// The pass and receiver buffers of the last batched run, reused while the number of masks stays the same.
    private var workspace: (copies: Int, pass: ForwardPass, buffers: [FloatBuffer])?

    /// Runs the clean and corrupted prompts once and caches what patched runs reuse.
    ///
    /// - Parameters:
    ///   - clean, corrupt: token sequences, pairwise of equal length
    ///   - reusesSharedPrefixes: under resample ablation, run the tokens each pair's prompts share at
    ///     their start once and every run from there on (false: whole prompts, for measuring the gain)
    public convenience init(
        model: TransformerModel, clean: [[Int]], corrupt: [[Int]], ablation: Ablation = .resample, reusesSharedPrefixes: Bool = true
    ) throws {
        try self.init(model: model, clean: clean, corrupt: corrupt, ablation: ablation, means: nil, reusesSharedPrefixes: reusesSharedPrefixes)
    }

    /// Runs the clean and corrupted prompts once; mean ablation uses `means` (nil: those of `corrupt`).
    convenience init(
        model: TransformerModel, clean: [[Int]], corrupt: [[Int]], ablation: Ablation, means: PositionMeans?, reusesSharedPrefixes: Bool = true
    ) throws {
        guard clean.count == corrupt.count else { throw ModelInputError("\(clean.count) clean prompts but \(corrupt.count) corrupted ones") }
        for (i, (a, b)) in zip(clean, corrupt).enumerated() where a.count != b.count {
            throw ModelInputError("pair \(i): clean prompt has \(a.count) tokens, corrupted prompt \(b.count); they must be equal")
        }
        let prefixes = reusesSharedPrefixes && ablation == .resample ? try SharedPrefixes(model: model, clean: clean, corrupt: corrupt) : nil
        let cleanPass = try model.forward(prefixes?.clean ?? clean, captureSenders: true, captureResiduals: true, prefix: prefixes?.cache)
        let means = ablation == .mean ? try means ?? PositionMeans(model: model, prompts: corrupt, chunkSize: corrupt.count) : nil
        let corrupted = try ablation.corruptSenders(model: model, corrupt: prefixes?.corrupt ?? corrupt, layout: cleanPass.layout, means: means,
                                                    readsOut: true, capturesResiduals: true, prefix: prefixes?.cache)
        self.init(model: model, ablation: ablation, cleanPass: cleanPass, corruptSenders: corrupted.senders, corruptLogits: corrupted.pass?.logits,
                  corruptResiduals: corrupted.pass?.residuals)
    }

    /// An engine made of runs already done (EAP's clean and corrupted passes of a chunk), so they are
    /// not run again.
    ///
    /// - Parameters:
    ///   - cleanPass: the clean run, with senders and residuals captured and the last row read out (patched
    ///     runs continue from its prefixes, if any)
    ///   - corruptSenders: `[senders, T, d]` corrupted sender outputs under `ablation` (kept, not copied)
    ///   - corruptLogits: `[examples, vocab]` the corrupted run's logits (resample ablation), or nil
    ///   - corruptResiduals: `[2·layers + 1, T, d]` the corrupted run's residual stream (resample ablation: the
    ///     stream made of corrupted senders, recorded instead of summed), or nil to sum it from the senders
    init(model: TransformerModel, ablation: Ablation, cleanPass: ForwardPass, corruptSenders: FloatBuffer, corruptLogits: FloatBuffer?,
         corruptResiduals: FloatBuffer? = nil) {
        precondition(cleanPass.senders != nil && cleanPass.residuals != nil, "the clean pass must capture senders and residuals")
        self.model = model
        self.ablation = ablation
        graph = model.graph
        layout = cleanPass.layout
        prefix = cleanPass.prefix
        cleanLogits = cleanPass.logits
        cleanSenders = cleanPass.senders!
        cleanResiduals = cleanPass.residuals!
        self.corruptSenders = corruptSenders
        self.corruptLogits = corruptLogits
        self.corruptResiduals = corruptResiduals
            ?? Self.corruptResiduals(graph: graph, clean: cleanResiduals, cleanSenders: cleanSenders, corruptSenders: corruptSenders,
                                     plane: layout.rows * model.config.dModel)
    }

    /// The clean stream at every point plus the corrupted-minus-clean outputs of the senders upstream of it.
    private static func corruptResiduals(
        graph g: CircuitGraph, clean: FloatBuffer, cleanSenders: FloatBuffer, corruptSenders: FloatBuffer, plane: Int
    ) -> FloatBuffer {
        let out = FloatBuffer(uninitializedCount: clean.count)
        let shift = FloatBuffer(count: plane)  // Σ (corrupt − clean) over the senders added so far
        var added = 0
        // Point 2l reads what a{l}'s receivers read, 2l + 1 what m{l} reads, 2L what logits reads.
        let upstream = (0..<g.layers).flatMap { l in
            [g.upstreamCount(receiverAt: g.attentionReceivers(ofLayer: l).lowerBound), g.upstreamCount(receiverAt: g.index(of: Receiver.mlp(layer: l)))]
        } + [g.senders.count]
        for (point, count) in upstream.enumerated() {
            for s in added..<count {
                axpy(shift.pointer, 1, corruptSenders.pointer + s * plane, plane)
                axpy(shift.pointer, -1, cleanSenders.pointer + s * plane, plane)
            }
            added = count
            addSum(out.pointer + point * plane, [shift.pointer], plane, onto: clean.pointer + point * plane)
        }
        return out
    }

    /// Frees the buffers of the last batched run (to the buffer pool, where the next engine's run finds
    /// them): an experiment of several engines runs them one after the other, so one set serves them all.
    public func releaseWorkspace() { workspace = nil }

    /// `[examples, vocab]` logits at each example's last token with edges patched by `mask`.
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ mask: EdgeMask) -> FloatBuffer { run([mask]) }

    /// Logits for several masks in one batched pass: `[masks.count × examples, vocab]`, mask k's
    /// example i at row `k·examples + i`. Batching makes the matrix products taller, which small
    /// batches of prompts need to run at full speed (ACDC tries many masks).
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ masks: [EdgeMask]) -> FloatBuffer {
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(!masks.isEmpty && masks.allSatisfy { $0.alpha.count == g.edgeCount }, "masks must cover the graph's \(g.edgeCount) edges")
        let copies = masks.count
        if workspace?.copies != copies {
            workspace = nil  // frees the previous buffers before allocating new ones
            workspace = (copies, ForwardPass(model: model, layout: layout.repeated(copies), readout: .last, captureSenders: true, prefix: prefix),
                         MaskPatch.buffers(heads: c.heads, copies: copies, plane: plane))
        }
        let (_, pass, buffers) = workspace!
        let patch = MaskPatch(graph: g, masks: masks, plane: plane, corrupt: corruptSenders.pointer,
                              corruptResiduals: corruptResiduals.pointer, run: pass.senders!.pointer, earlier: cleanSenders.pointer,
                              firstRunSender: 0, buffers: buffers)
        guard let first = patch.firstPatchedReceiver else {
            for k in 0..<copies { (pass.logits.pointer + k * cleanLogits.count).update(from: cleanLogits.pointer, count: cleanLogits.count) }
            return pass.logits
        }
        let startLayer = min(g.receivers[first].layer, c.layers)
        // Senders before the first patched layer are the clean ones, and so is the stream entering it.
        patch.firstRunSender = g.firstSender(ofLayer: startLayer)
        let entry = pass.entry(startLayer)
        for k in 0..<copies { (entry + k * plane).update(from: cleanResiduals.pointer + 2 * startLayer * plane, count: plane) }
        model.run(pass, from: startLayer, patch: patch)
        return pass.logits
    }
}

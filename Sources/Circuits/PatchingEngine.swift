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
    /// A run that later runs start from instead of the clean one (`start(from:)`).
    private var base: Origin?

    /// A run that runs start from: the clean run, or a run under another mask.
    private struct Origin {
        /// Its mask (nil: the clean run, no edge corrupted).
        let mask: EdgeMask?
        /// `[senders, T, d]` every sender's own output.
        let senders: FloatBuffer
        /// `[2·layers + 1, T, d]` its stream at every point.
        let residuals: FloatBuffer
        /// `[examples, vocab]` its logits.
        let logits: FloatBuffer
        /// The senders its mask corrupts on every outgoing edge, which runs replace (`MaskPatch`).
        let replaced: [Bool]
        /// `[layers + 1, T, d]` the stream entering each layer (then `logits`) with the replaced senders
        /// before it carrying their corrupted outputs (nil: `residuals`, none being replaced).
        let entries: FloatBuffer?

        /// `[T, d]` the stream a run replacing `replaced` senders enters `layer` with.
        func entry(_ layer: Int, plane: Int) -> UnsafePointer<Float> {
            UnsafePointer(entries.map { $0.pointer + layer * plane } ?? residuals.pointer + 2 * layer * plane)
        }
    }

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
            ?? Self.corruptedStream(graph: graph, cleanResiduals: cleanResiduals, cleanSenders: cleanSenders, corruptSenders: corruptSenders,
                                    plane: layout.rows * model.config.dModel)
    }

    /// `[2·layers + 1, T, d]` the residual stream made of corrupted senders at every point, from a clean
    /// run's stream and senders: what a run with every edge corrupted reads (under mean and zero ablation,
    /// where no corrupted run records it).
    static func corruptedStream(graph g: CircuitGraph, cleanResiduals: FloatBuffer, cleanSenders: FloatBuffer, corruptSenders: FloatBuffer,
                                plane: Int) -> FloatBuffer {
        // Point 2l reads what a{l}'s receivers read, 2l + 1 what m{l} reads, 2L what logits reads.
        let upstream = (0..<g.layers).flatMap { [g.firstSender(ofLayer: $0), g.firstSender(ofLayer: $0) + g.heads] } + [g.senders.count]
        return stream(cleanResiduals, points: Array(upstream.indices), upstream: upstream, own: cleanSenders, corrupt: corruptSenders,
                      replacing: nil, plane: plane)
    }

    /// `[points.count, T, d]` the stream of a run (`residuals`, `[2·layers + 1, T, d]`) at `points`, with the
    /// senders before `upstream[i]` (all, or those `replacing` marks) carrying `corrupt_s` instead of their
    /// own outputs `own_s`: `residuals[point] + Σ (corrupt_s − own_s)`.
    private static func stream(
        _ residuals: FloatBuffer, points: [Int], upstream: [Int], own: FloatBuffer, corrupt: FloatBuffer, replacing: [Bool]?, plane: Int
    ) -> FloatBuffer {
        let out = FloatBuffer(uninitializedCount: points.count * plane)
        let shift = FloatBuffer(count: plane)  // Σ (corrupt − own) over the senders added so far
        var added = 0
        for (i, point) in points.enumerated() {
            for s in added..<upstream[i] where replacing?[s] ?? true {
                axpy(shift.pointer, 1, corrupt.pointer + s * plane, plane)
                axpy(shift.pointer, -1, own.pointer + s * plane, plane)
            }
            added = upstream[i]
            addSum(out.pointer + i * plane, [shift.pointer], plane, onto: residuals.pointer + point * plane)
        }
        return out
    }

    /// Frees the buffers of the last batched run (to the buffer pool, where the next engine's run finds
    /// them): an experiment of several engines runs them one after the other, so one set serves them all.
    public func releaseWorkspace() { workspace = nil }

    /// The metric under `mask` and, added to `scores` times `scale`, its gradient ∂M/∂α for the edges
    /// into layer `layer` (`logits`: layer `layers`; design §4, as `MaskedGradient` computes it for every edge).
    ///
    /// The run starts at `layer`, or at the first layer where `mask` differs from the run started from
    /// (`start(from:)`, else the clean run) if that is lower, from that run's stream and senders, and
    /// the backward pass stops at `layer`: a visit of ACDC's attributed
    /// trials pays for the layers above the one it decides, not for the whole model. Senders cut off
    /// (every outgoing α = 1) are replaced by their corrupted outputs, as patched runs replace them, and
    /// not computed: their edges get gradient 0 (ACDC has decided them already: their node is removed).
    /// The masked gradient of every edge is `MaskedGradient`'s.
    ///
    /// - Parameters:
    ///   - targets: the metric's targets for these examples (with the clean distribution, for `kl`)
    ///   - scores: `[edges]`; entries of edges into other layers are left as they are
    /// - Returns: the metric under `mask`, averaged over the examples (unscaled)
    func gradient(_ mask: EdgeMask, metric: Metric, targets: MetricTargets, scale: Float, through layer: Int, into scores: inout [Float]) -> Double {
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(mask.alpha.count == g.edgeCount && (0...c.layers).contains(layer),
                     "a mask of the graph's edges and a layer (the layer count: `logits` alone)")
        let pass = ForwardPass(model: model, layout: layout, readout: .last, keepActivations: true, captureSenders: true, prefix: prefix)
        let start = origin
        let patch = MaskPatch(graph: g, masks: [mask], plane: plane, corrupt: corruptSenders.pointer, corruptResiduals: corruptResiduals,
                              run: pass.senders!.pointer, earlier: start.senders.pointer, firstRunSender: 0,
                              buffers: MaskPatch.buffers(heads: c.heads, copies: 1, plane: plane), allowsProduct: true, replacesNodes: true)
        let startLayer = min(firstLayer(differing: [mask]) ?? layer, layer, c.layers - 1)
        // Senders before the first layer run are those of the run started from, and so is the stream entering
        // it, but for the senders replaced.
        patch.firstRunSender = g.firstSender(ofLayer: startLayer)
        patch.writeEntries(pass.entry(startLayer), from: start.entry(startLayer, plane: plane), originReplaced: start.replaced)
        model.run(pass, from: startLayer, patch: patch)
        let routing = MaskRouting(graph: g, alpha: mask.alpha, rows: layout.rows, dModel: c.dModel, firstSender: layer == 0 ? 0 : g.firstSender(ofLayer: layer))
        return EdgeAttribution.backpropagate(model: model, pass: pass, metric: metric, targets: targets, scale: scale,
                                             diffs: patch.differences(upTo: g.senders.count), routing: routing, through: layer,
                                             scoresOnlyLowest: true, into: &scores, profile: nil).metric
    }

    /// `[examples, vocab]` logits at each example's last token with edges patched by `mask`.
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    public func run(_ mask: EdgeMask) -> FloatBuffer { run([mask]) }

    /// Logits for several masks in one batched pass: `[masks.count × examples, vocab]`, mask k's
    /// example i at row `k·examples + i`. Batching makes the matrix products taller, which small
    /// batches of prompts need to run at full speed (ACDC tries many masks).
    ///
    /// The returned buffer is reused by the next call; copy it to keep it.
    ///
    /// - Parameters:
    ///   - columns: the only vocabulary columns to compute (a metric that reads only some, such as
    ///     `logit_diff`: the unembedding is otherwise a tenth of a pass that starts high in the model);
    ///     the other columns hold whatever an earlier run left there
    ///   - products: a single mask's inputs with many edges to add are computed as one product over the
    ///     senders (`MaskPatch`), threaded, instead of edge by edge: a circuit's evaluation, whose mask
    ///     keeps or corrupts thousands of edges. Off, results do not depend on how masks are batched
    ///     (ACDC's trials), and a batch of several masks is always summed edge by edge.
    public func run(_ masks: [EdgeMask], columns: ReadoutColumns? = nil, products: Bool = false) -> FloatBuffer {
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(!masks.isEmpty && masks.allSatisfy { $0.alpha.count == g.edgeCount }, "masks must cover the graph's \(g.edgeCount) edges")
        let copies = masks.count
        if workspace?.copies != copies {
            workspace = nil  // frees the previous buffers before allocating new ones
            workspace = (copies, ForwardPass(model: model, layout: layout.repeated(copies), readout: .last, captureSenders: true, prefix: prefix),
                         MaskPatch.buffers(heads: c.heads, copies: copies, plane: plane))
        }
        let (_, pass, buffers) = workspace!
        pass.readout.columns = columns
        let start = origin
        let patch = MaskPatch(graph: g, masks: masks, plane: plane, corrupt: corruptSenders.pointer,
                              corruptResiduals: corruptResiduals, run: pass.senders!.pointer, earlier: start.senders.pointer,
                              firstRunSender: 0, buffers: buffers, allowsProduct: products, keepsDifferences: false, replacesNodes: true)
        guard let startLayer = firstLayer(differing: masks) else {
            for k in 0..<copies { (pass.logits.pointer + k * start.logits.count).update(from: start.logits.pointer, count: start.logits.count) }
            return pass.logits
        }
        // Senders before the first layer whose inputs differ from the run started from are that run's,
        // and so is the stream entering it, but for the senders each copy replaces.
        patch.firstRunSender = g.firstSender(ofLayer: startLayer)
        patch.writeEntries(pass.entry(startLayer), from: start.entry(startLayer, plane: plane), originReplaced: start.replaced)
        model.run(pass, from: startLayer, patch: patch)
        return pass.logits
    }

    /// The run that runs start from: the base, else the clean run.
    private var origin: Origin {
        base ?? Origin(mask: nil, senders: cleanSenders, residuals: cleanResiduals, logits: cleanLogits,
                       replaced: [Bool](repeating: false, count: graph.senders.count), entries: nil)
    }

    /// The layer of the first receiver where one of `masks` differs from the run that runs start from
    /// (the base's mask, else all zeros), or nil when none does.
    private func firstLayer(differing masks: [EdgeMask]) -> Int? {
        let g = graph, reference = base?.mask?.alpha
        for r in 0..<g.receivers.count {
            let edges = g.edgeOffsets[r]..<g.edgeOffsets[r + 1]
            if masks.contains(where: { mask in edges.contains { mask.alpha[$0] != (reference?[$0] ?? 0) } }) {
                return min(g.receivers[r].layer, model.config.layers)
            }
        }
        return nil
    }

    /// Makes later runs start from a run under `mask` instead of the clean run: a run whose mask agrees
    /// with it on every edge into the layers below some layer starts there, from this run's stream and
    /// senders (nil: from the clean run again). ACDC sets the removed nodes once their trials are done,
    /// so that edge trials at a layer do not run the layers below it again. It holds another set of
    /// senders and stream, about a third of the engine's memory, and the stream entering each layer with
    /// the nodes it removes whole carrying their corrupted outputs.
    public func start(from mask: EdgeMask?) {
        base = nil
        guard let mask else { return }
        let c = model.config, g = graph, plane = layout.rows * c.dModel
        precondition(mask.alpha.count == g.edgeCount, "the mask must cover the graph's \(g.edgeCount) edges")
        guard let startLayer = firstLayer(differing: [mask]) else { return }
        let pass = ForwardPass(model: model, layout: layout, readout: .last, captureSenders: true, captureResiduals: true, prefix: prefix)
        let patch = MaskPatch(graph: g, masks: [mask], plane: plane, corrupt: corruptSenders.pointer, corruptResiduals: corruptResiduals,
                              run: pass.senders!.pointer, earlier: cleanSenders.pointer, firstRunSender: g.firstSender(ofLayer: startLayer),
                              buffers: MaskPatch.buffers(heads: c.heads, copies: 1, plane: plane))
        // Below the first patched layer the run is the clean one.
        pass.senders!.pointer.update(from: cleanSenders.pointer, count: g.firstSender(ofLayer: startLayer) * plane)
        pass.residuals!.pointer.update(from: cleanResiduals.pointer, count: (2 * startLayer + 1) * plane)
        pass.entry(startLayer).update(from: cleanResiduals.pointer + 2 * startLayer * plane, count: plane)
        model.run(pass, from: startLayer, patch: patch)
        let logits = FloatBuffer(uninitializedCount: pass.logits.count)
        logits.pointer.update(from: pass.logits.pointer, count: logits.count)
        // The stream entering each layer (then logits), the replaced senders before it carrying their corrupted outputs.
        let replaced = MaskPatch.replacedSenders(mask, graph: g)
        let entries = Self.stream(pass.residuals!, points: (0...c.layers).map { 2 * $0 }, upstream: (0...c.layers).map { g.firstSender(ofLayer: $0) },
                                  own: pass.senders!, corrupt: corruptSenders, replacing: replaced, plane: plane)
        base = Origin(mask: mask, senders: pass.senders!, residuals: pass.residuals!, logits: logits, replaced: replaced, entries: entries)
    }
}

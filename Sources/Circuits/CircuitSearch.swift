import Foundation
import Transformer

/// Gradient-guided local search over circuits of a fixed size: start from a ranking's top n (EAP-IG's),
/// then swap edges in and out where the metric's gradient at the circuit itself says it helps.
///
/// Top-n attribution ranks edges by their effect on the clean model, one edge at a time; a circuit of
/// ~1 % of the edges is far from that point, so the ranking misjudges what such a circuit needs. The
/// search works at the circuit: every step runs the model under the circuit's mask (kept edges clean,
/// the others corrupted) and its backward pass (`MaskedGradient`), which give the metric M and
/// g_e = ∂M/∂α_e for every edge. Corrupting a kept edge moves M by about g_e, restoring a removed one by
/// about −g_e. With the loss L = (M − M_clean)² (for `kl`, L = KL), the step pairs the kept edges whose
/// removal costs least with the removed edges whose restoration helps most, and swaps a pair when the
/// predicted loss falls. A trust region keeps the estimates honest: a step whose measured loss is not
/// below the best circuit's goes back to the best circuit, halves the number of moves, and sets aside
/// for the rest of the run the edge with the largest predicted effect among the failed moves (the
/// estimate most likely to be wrong: on SmolLM2 those are edges carrying m0's massive activations); a
/// step that improves grows the number of moves by half. Circuits are kept pruned to input→logits
/// paths, and slots that pruning frees are filled by restorations alone.
///
/// Deterministic: ties break by edge index. Each step costs one masked forward and backward pass.
public final class CircuitSearch {
    /// Options of a search.
    public struct Options: Sendable, Equatable {
        /// Edges in the circuit.
        public var edges: Int
        /// Steps (masked forward and backward passes) after the first.
        public var steps: Int
        /// Most moves in the first step, as a fraction of `edges`.
        public var moveFraction: Double
        /// The search stops once the circuit's metric is this close to the clean model's (for `kl`: once
        /// KL is this small).
        public var tolerance: Double
        /// Pairs per forward/backward chunk.
        public var chunkSize: Int

        /// Options with the defaults of `circuits discover --method search`.
        public init(edges: Int, steps: Int = 25, moveFraction: Double = 0.05, tolerance: Double = 0, chunkSize: Int = 32) {
            self.edges = edges
            self.steps = steps
            self.moveFraction = moveFraction
            self.tolerance = tolerance
            self.chunkSize = chunkSize
        }
    }

    /// A progress report after a step.
    public struct Progress: Sendable {
        public let step: Int
        public let steps: Int
        /// The metric of the circuit this step measured, and of the best circuit so far.
        public let metric: Double
        public let bestMetric: Double
        /// Whether this step's circuit became the best.
        public let improved: Bool
        /// Most moves (restorations and swaps) the next step tries.
        public let moves: Int
        public let seconds: Double
    }

    public let options: Options
    public let gradient: MaskedGradient
    /// The metric of the clean model on the pairs, which the circuit's metric should match.
    public let cleanMetric: Double

    /// A search for a circuit of `options.edges` edges whose `metric` on `pairs` stays at `cleanMetric`.
    public init(model: TransformerModel, pairs: PairBatch, metric: Metric, cleanMetric: Double, ablation: Ablation = .resample,
                options: Options) throws {
        let edges = model.graph.edgeCount
        guard options.edges >= 1, options.edges < edges else {
            throw ModelInputError("a searched circuit needs between 1 and \(edges - 1) edges, got \(options.edges)")
        }
        guard options.steps >= 0 else { throw ModelInputError("search steps must be at least 0, got \(options.steps)") }
        guard options.moveFraction.isFinite, options.moveFraction > 0, options.moveFraction <= 1 else {
            throw ModelInputError("the move fraction must be in (0, 1], got \(options.moveFraction)")
        }
        guard options.tolerance.isFinite, options.tolerance >= 0 else { throw ModelInputError("the tolerance must be finite and ≥ 0, got \(options.tolerance)") }
        guard cleanMetric.isFinite else { throw ModelInputError("the clean metric is not finite (\(cleanMetric))") }
        self.options = options
        self.cleanMetric = cleanMetric
        gradient = try MaskedGradient(model: model, pairs: pairs, metric: metric, ablation: ablation, chunkSize: options.chunkSize,
                                      cachesChunks: true)
    }

    /// The loss the search lowers for metric value `m`.
    func loss(_ m: Double) -> Double {
        gradient.metric == .kl ? m : (m - cleanMetric) * (m - cleanMetric)
    }

    /// Moves predicted to lower the loss for the circuit `kept` measured at `metric` with gradient `g`,
    /// at most `limit` of them: first restorations into the `free` slots the circuit does not use,
    /// then swaps (a kept edge out, a removed edge in). Edges in `setAside` are not moved.
    func moves(kept: Set<Int>, free: Int, metric: Double, g: [Float], limit: Int, excluding setAside: Set<Int> = [])
        -> (remove: [Int], restore: [Int]) {
        let isKL = gradient.metric == .kl
        var deviation = metric - cleanMetric
        /// Predicted loss change when the metric moves by `change` from the running deviation.
        func lossChange(_ change: Double) -> Double { isKL ? change : (deviation + change) * (deviation + change) - deviation * deviation }
        // Candidates ordered by their own predicted loss change at the starting deviation.
        func ordered(_ edges: [Int], sign: Double) -> [Int] {
            edges.map { (lossChange(sign * Double(g[$0])), $0) }.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.map(\.1)
        }
        let removals = ordered(kept.filter { !setAside.contains($0) }.sorted(), sign: 1)
        let restorations = ordered((0..<g.count).filter { !kept.contains($0) && !setAside.contains($0) }, sign: -1)
        var remove: [Int] = [], restore: [Int] = []
        while remove.count + restore.count < limit, restore.count < restorations.count {
            let into = restorations[restore.count]
            let paired = restore.count >= free
            guard !paired || remove.count < removals.count else { break }
            let change = (paired ? Double(g[removals[remove.count]]) : 0) - Double(g[into])
            guard lossChange(change) < 0 else { break }
            if paired { remove.append(removals[remove.count]) }
            restore.append(into)
            deviation += change
        }
        return (remove, restore)
    }

    /// Searches from the top `options.edges` of `start` (ranked by |score|), reporting after each step.
    ///
    /// - Returns: the best circuit found (dense edge indices, pruned), its metric, and `[edges]`
    ///   the gradient ∂M/∂α at it
    public func run(start: [Float], progress: ((Progress) -> Void)? = nil) throws -> (edges: [Int], metric: Double, gradient: [Float]) {
        let graph = gradient.model.graph
        guard start.count == graph.edgeCount else {
            throw ModelInputError("the starting scores have \(start.count) entries; the graph has \(graph.edgeCount) edges")
        }
        // Circuits are kept pruned (design §7), so slots held by edges off every input→logits path are free.
        var best = Set(graph.pruned(Selection.ranked(start).prefix(options.edges)))
        var measured = try gradient.gradient(EdgeMask(graph: graph, keeping: best))
        var bestMetric = measured.metric, bestGradient = measured.edges
        var limit = max(1, Int((Double(options.edges) * options.moveFraction).rounded()))
        let begin = Date()
        progress?(Progress(step: 0, steps: options.steps, metric: bestMetric, bestMetric: bestMetric, improved: true, moves: limit,
                           seconds: Date().timeIntervalSince(begin)))
        var step = 0
        var setAside = Set<Int>()
        let goal = gradient.metric == .kl ? options.tolerance : options.tolerance * options.tolerance
        while step < options.steps, loss(bestMetric) > goal {
            let planned = moves(kept: best, free: options.edges - best.count, metric: bestMetric, g: bestGradient, limit: limit,
                                excluding: setAside)
            guard !planned.restore.isEmpty else { break }  // no move is predicted to help
            let candidate = Set(graph.pruned(best.subtracting(planned.remove).union(planned.restore)))
            step += 1
            measured = try gradient.gradient(EdgeMask(graph: graph, keeping: candidate))
            let improved = loss(measured.metric) < loss(bestMetric)
            if improved {
                best = candidate
                bestMetric = measured.metric
                bestGradient = measured.edges
                limit = min(options.edges, limit + (limit + 1) / 2)
            } else {
                limit = max(1, limit / 2)
                let suspect = (planned.remove + planned.restore).max { abs(bestGradient[$0]) < abs(bestGradient[$1]) }!
                setAside.insert(suspect)
            }
            progress?(Progress(step: step, steps: options.steps, metric: measured.metric, bestMetric: bestMetric, improved: improved,
                               moves: limit, seconds: Date().timeIntervalSince(begin)))
        }
        return (best.sorted(), bestMetric, bestGradient)
    }
}

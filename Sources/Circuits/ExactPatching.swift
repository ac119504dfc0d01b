import Foundation
import Transformer

/// Exact activation patching (design §6): `score(e) = M(α = 1 on e only) − M(α = 0)`, one patched
/// forward pass per edge, starting at the edge's receiver layer.
public enum ExactPatching {
    /// Progress of a run: edges done and total.
    public typealias Progress = (_ done: Int, _ total: Int) -> Void

    /// Scores of `edges` (dense indices), in the same order.
    public static func scores(_ experiment: Experiment, edges: [Int], progress: Progress? = nil) -> [Float] {
        var mask = EdgeMask(graph: experiment.graph)
        var out: [Float] = []
        out.reserveCapacity(edges.count)
        for (done, e) in edges.enumerated() {
            mask[e] = 1
            out.append(Float(experiment.evaluate(mask) - experiment.cleanMetric))
            mask[e] = 0
            progress?(done + 1, edges.count)
        }
        return out
    }

    /// Scores of every edge of the graph.
    public static func allScores(_ experiment: Experiment, progress: Progress? = nil) -> [Float] {
        scores(experiment, edges: Array(0..<experiment.graph.edgeCount), progress: progress)
    }
}

/// Node patching (design §6): corrupt one sender's output everywhere it is read (all its outgoing
/// edges) and measure `M − M_clean`: a coarser view than edges.
public enum NodePatching {
    /// `(node, score)` for every head and MLP, in topological order.
    public static func scores(_ experiment: Experiment, progress: ExactPatching.Progress? = nil) -> [(Sender, Float)] {
        let g = experiment.graph
        let nodes = g.senders.filter { $0 != .input }
        var out: [(Sender, Float)] = []
        for (done, node) in nodes.enumerated() {
            var mask = EdgeMask(graph: g)
            let s = g.index(of: node)
            for r in 0..<g.receivers.count where g.upstreamCount(receiverAt: r) > s { mask[g.edgeOffsets[r] + s] = 1 }
            out.append((node, Float(experiment.evaluate(mask) - experiment.cleanMetric)))
            progress?(done + 1, nodes.count)
        }
        return out
    }
}

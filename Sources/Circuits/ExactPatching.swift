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
    /// Every sender's score, in `CircuitGraph.senders` order (`input` first).
    public static func scores(_ experiment: Experiment, progress: ExactPatching.Progress? = nil) -> [Float] {
        let g = experiment.graph
        var out: [Float] = []
        for s in g.senders.indices {
            var mask = EdgeMask(graph: g)
            for e in g.outgoingEdges(ofSender: s) { mask[e] = 1 }
            out.append(Float(experiment.evaluate(mask) - experiment.cleanMetric))
            progress?(s + 1, g.senders.count)
        }
        return out
    }
}

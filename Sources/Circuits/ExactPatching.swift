import Foundation
import Transformer

/// Exact activation patching (design §6): `score(e) = M(α = 1 on e only) − M(α = 0)`, one patched
/// forward pass per edge, starting at the edge's receiver layer.
public enum ExactPatching {
    /// Progress of a run: edges done and total.
    public typealias Progress = (_ done: Int, _ total: Int) -> Void

    /// Masks measured together when the experiment rebuilds some chunks' engines: each rebuilt engine (a
    /// clean and a corrupted run) then serves this many patched runs instead of one.
    public static let rebuiltGroup = 16

    /// Scores of `edges` (dense indices), in the same order.
    public static func scores(_ experiment: Experiment, edges: [Int], progress: Progress? = nil) -> [Float] {
        measure(experiment, count: edges.count, progress: progress) { k in
            var mask = EdgeMask(graph: experiment.graph)
            mask[edges[k]] = 1
            return mask
        }
    }

    /// `M(mask(k)) − M_clean` for `k` in `0..<count`, in groups of `rebuiltGroup` when some engines are
    /// rebuilt (one at a time otherwise), with progress after each group.
    static func measure(_ experiment: Experiment, count: Int, progress: Progress?, mask: (Int) -> EdgeMask) -> [Float] {
        let group = experiment.keptChunks < experiment.chunks.count ? rebuiltGroup : 1
        var out: [Float] = []
        out.reserveCapacity(count)
        for start in stride(from: 0, to: count, by: group) {
            let end = min(start + group, count)
            out += experiment.evaluateEach((start..<end).map(mask)).map { Float($0 - experiment.cleanMetric) }
            progress?(end, count)
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
        return ExactPatching.measure(experiment, count: g.senders.count, progress: progress) { s in
            var mask = EdgeMask(graph: g)
            for e in g.outgoingEdges(ofSender: s) { mask[e] = 1 }
            return mask
        }
    }
}

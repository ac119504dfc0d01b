import Transformer

// Choosing a circuit from edge scores, pruning it, and measuring its faithfulness (design §7).

/// How a circuit is chosen from edge scores (design §7). Selection ranks edges by |score|.
public enum Selection: Sendable, Equatable, CustomStringConvertible {
    /// The `n` edges with the largest |score|.
    case topN(Int)
    /// Every edge with |score| ≥ the threshold.
    case threshold(Double)
    /// From `logits` backwards: repeatedly add the largest-|score| edge into a node already in the
    /// circuit (or into `logits`), until `n` edges.
    case greedy(Int)

    /// How the edges were chosen, for records: `top 200`, `greedy 200`, `|score| ≥ 0.01`.
    public var description: String {
        switch self {
        case .topN(let n): return "top \(n)"
        case .threshold(let t): return "|score| ≥ \(t)"
        case .greedy(let n): return "greedy \(n)"
        }
    }

    /// Dense indices of the chosen edges, before pruning.
    public func select(_ scores: [Float], graph: CircuitGraph) -> [Int] {
        switch self {
        case .topN(let n):
            return Array(Self.ranked(scores).prefix(max(0, n)))
        case .threshold(let t):
            return scores.indices.filter { Double(abs(scores[$0])) >= t }
        case .greedy(let n):
            return Self.greedy(scores, graph: graph, count: n)
        }
    }

    /// Edge indices by decreasing |score| (ties by index, so the order is deterministic).
    static func ranked(_ scores: [Float]) -> [Int] {
        scores.indices.sorted { a, b in
            let x = abs(scores[a]), y = abs(scores[b])
            return x != y ? x > y : a < b
        }
    }

    /// Greedy growth from `logits` with a priority queue of candidate edges.
    private static func greedy(_ scores: [Float], graph g: CircuitGraph, count: Int) -> [Int] {
        var heap = MaxHeap()
        var chosen: [Int] = []
        var inCircuit = Set<Sender>()
        /// Makes every edge into `receiver` a candidate.
        func open(_ receiver: Receiver) {
            let r = g.index(of: receiver)
            for e in g.edgeOffsets[r]..<g.edgeOffsets[r + 1] { heap.push(abs(scores[e]), e) }
        }
        open(.logits)
        while chosen.count < count, let e = heap.pop() {
            chosen.append(e)
            let sender = g.edge(e).sender
            if sender != .input, inCircuit.insert(sender).inserted {
                for receiver in g.receivers(of: sender) { open(receiver) }
            }
        }
        return chosen
    }
}

/// A binary max-heap of (priority, edge); ties pop the lower edge index first.
private struct MaxHeap {
    private var items: [(Float, Int)] = []

    private static func before(_ a: (Float, Int), _ b: (Float, Int)) -> Bool { a.0 != b.0 ? a.0 > b.0 : a.1 < b.1 }

    mutating func push(_ priority: Float, _ edge: Int) {
        items.append((priority, edge))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count, Self.before(items[l], items[best]) { best = l }
                if r < items.count, Self.before(items[r], items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top.1
    }
}

extension CircuitGraph {
    /// The edges of `edges` that lie on a path from `input` to `logits` through kept edges (design §7):
    /// an edge stays when its sender is `input` or reached from `input`, and its receiver's node reaches
    /// `logits` (or it is `logits`).
    public func pruned(_ edges: some Sequence<Int>) -> [Int] {
        let kept = Set(edges)
        var incoming = [[Int]](repeating: [], count: senders.count)  // kept edges into each node
        var outgoing = [[Int]](repeating: [], count: senders.count)  // kept edges out of each node
        for e in kept {
            let edge = edge(e)
            outgoing[index(of: edge.sender)].append(e)
            if let node = edge.receiver.node { incoming[index(of: node)].append(e) }
        }
        // Forward in topological order: nodes reached from input.
        var reached = [Bool](repeating: false, count: senders.count)
        reached[0] = true
        for s in 1..<senders.count {
            reached[s] = incoming[s].contains { reached[index(of: edge($0).sender)] }
        }
        // Backward: nodes that reach logits.
        var reaches = [Bool](repeating: false, count: senders.count)
        for s in stride(from: senders.count - 1, through: 0, by: -1) {
            reaches[s] = outgoing[s].contains { e in
                let receiver = edge(e).receiver
                guard let node = receiver.node else { return true }
                return reaches[index(of: node)]
            }
        }
        return kept.filter { e in
            let edge = edge(e)
            guard reached[index(of: edge.sender)] else { return false }
            guard let node = edge.receiver.node else { return true }
            return reaches[index(of: node)] && reached[index(of: node)]
        }.sorted()
    }
}

/// Faithfulness of one circuit size, for curves.
public struct FaithfulnessPoint: Codable, Sendable, Equatable {
    /// Edges asked for (top-n).
    public var requested: Int
    /// Edges left after pruning.
    public var edges: Int
    /// Metric with only those edges clean.
    public var metric: Double
    public var faithfulness: Double
}

extension Experiment {
    /// Metric and faithfulness with only `edges` clean.
    public func evaluate(circuit edges: [Int]) -> (metric: Double, faithfulness: Double) {
        let value = evaluate(EdgeMask(graph: graph, keeping: edges))
        return (value, faithfulness(of: value))
    }

    /// Faithfulness of the pruned top-n circuit for each n in `sizes` (design §7).
    public func faithfulnessCurve(scores: [Float], sizes: [Int]) -> [FaithfulnessPoint] {
        let ranked = Selection.ranked(scores)
        return sizes.map { n in
            let edges = graph.pruned(ranked.prefix(min(n, ranked.count)))
            let (value, f) = evaluate(circuit: edges)
            return FaithfulnessPoint(requested: n, edges: edges.count, metric: value, faithfulness: f)
        }
    }

    /// The smallest top-n (pruned) circuit whose faithfulness reaches `target`, found by bisection on n.
    ///
    /// Faithfulness need not grow monotonically with n; bisection finds an n where it crosses the target.
    public func smallestCircuit(scores: [Float], target: Double) -> (requested: Int, edges: [Int], point: FaithfulnessPoint) {
        let ranked = Selection.ranked(scores)
        func point(_ n: Int) -> (edges: [Int], point: FaithfulnessPoint) {
            let edges = graph.pruned(ranked.prefix(n))
            let (value, f) = evaluate(circuit: edges)
            return (edges, FaithfulnessPoint(requested: n, edges: edges.count, metric: value, faithfulness: f))
        }
        var lo = 0, hi = ranked.count
        var best = point(hi)
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            let candidate = point(mid)
            if candidate.point.faithfulness >= target {
                hi = mid
                best = candidate
            } else {
                lo = mid
            }
        }
        return (hi, best.edges, best.point)
    }
}

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
    /// Metric and faithfulness with only `edges` clean; dense receiver inputs as products
    /// (`PatchingEngine.run`).
    public func evaluate(circuit edges: [Int]) -> (metric: Double, faithfulness: Double) {
        let value = evaluate([EdgeMask(graph: graph, keeping: edges)], products: true)[0]
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

    /// One probe of the bisection: the circuit measured and the bracket (top-n sizes) after it.
    public struct BisectionProbe: Sendable {
        /// Probes done, and at most how many there will be.
        public let probe: Int, probes: Int
        public let point: FaithfulnessPoint
        /// The target lies between top `below` (short of it) and top `reached` (reaching it, or the whole graph).
        public let below: Int, reached: Int
        /// Whether the bracket is closed: this was the last probe.
        public var isLast: Bool { reached - below <= 1 }
    }

    /// The smallest top-n (pruned) circuit whose faithfulness reaches `target`, found by bisection on n.
    ///
    /// Faithfulness need not grow monotonically with n; bisection finds an n where it crosses the target.
    public func smallestCircuit(scores: [Float], target: Double, progress: ((BisectionProbe) -> Void)? = nil)
        -> (requested: Int, edges: [Int], point: FaithfulnessPoint) {
        let ranked = Selection.ranked(scores)
        // The whole graph, then one probe per halving of the bracket: at most ⌈log₂ count⌉.
        let probes = 1 + Int.bitWidth - max(ranked.count - 1, 0).leadingZeroBitCount
        var probe = 0, lo = 0, hi = ranked.count
        func point(_ n: Int) -> (edges: [Int], point: FaithfulnessPoint) {
            let edges = graph.pruned(ranked.prefix(n))
            let (value, f) = evaluate(circuit: edges)
            probe += 1
            return (edges, FaithfulnessPoint(requested: n, edges: edges.count, metric: value, faithfulness: f))
        }
        var best = point(hi)
        progress?(BisectionProbe(probe: probe, probes: probes, point: best.point, below: lo, reached: hi))
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            let candidate = point(mid)
            if candidate.point.faithfulness >= target {
                hi = mid
                best = candidate
            } else {
                lo = mid
            }
            progress?(BisectionProbe(probe: probe, probes: probes, point: candidate.point, below: lo, reached: hi))
        }
        return (hi, best.edges, best.point)
    }
}

/// MIB's circuit-localisation metrics (Mueller et al. 2025, circuit track; design §12): faithfulness
/// of the top ⌊k·E⌋ edges at edge budgets k, and the areas under f (CPR, higher is better) and under
/// |1 − f| (CMD, lower is better) by the trapezoid rule over k on a linear scale.
public struct MIBScores: Codable, Sendable, Equatable {
    /// Budgets as fractions of the graph's edges.
    public static let budgets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]

    /// One budget: edges asked for, edges after pruning, faithfulness.
    public struct Point: Codable, Sendable, Equatable {
        public var budget: Double
        public var requested: Int
        public var edges: Int
        public var faithfulness: Double

        /// A point of a budget curve.
        public init(budget: Double, requested: Int, edges: Int, faithfulness: Double) {
            self.budget = budget
            self.requested = requested
            self.edges = edges
            self.faithfulness = faithfulness
        }
    }

    /// Points of the CPR ranking: edges that help the behaviour most first (signed score).
    public var cprPoints: [Point]
    /// Points of the CMD ranking: largest |score| first.
    public var cmdPoints: [Point]
    public var cpr: Double
    public var cmd: Double

    /// The area under `value(f)` over the budgets, by the trapezoid rule.
    public static func area(_ points: [Point], _ value: (Double) -> Double) -> Double {
        zip(points, points.dropFirst()).reduce(0) { sum, pair in
            sum + (pair.1.budget - pair.0.budget) * (value(pair.0.faithfulness) + value(pair.1.faithfulness)) / 2
        }
    }
}

extension Experiment {
    /// MIB's CPR and CMD of `scores` on this experiment's pairs.
    ///
    /// Signed scores estimate the change of the metric when an edge is corrupted, so the edges that
    /// help the behaviour most are the most negative for metrics where higher means more of the
    /// behaviour (`logit_diff`, `prob_diff`, `logprob`) and the most positive for `kl`. Scores that
    /// only rank edges to keep (`signed` false, e.g. learned gates) are taken highest first.
    public func mibScores(_ scores: [Float], signed: Bool = true, budgets: [Double] = MIBScores.budgets) -> MIBScores {
        let descending = !signed || metric == .kl
        let helpful = scores.indices.sorted { a, b in
            let x = descending ? -scores[a] : scores[a], y = descending ? -scores[b] : scores[b]
            return x != y ? x < y : a < b
        }
        let byMagnitude = Selection.ranked(scores)
        func points(_ ranked: [Int]) -> [MIBScores.Point] {
            budgets.map { k in
                let n = Int((k * Double(graph.edgeCount)).rounded(.down))
                let edges = graph.pruned(ranked.prefix(n))
                return MIBScores.Point(budget: k, requested: n, edges: edges.count, faithfulness: evaluate(circuit: edges).faithfulness)
            }
        }
        // Scores that are all ≥ 0 (learned masks') rank the same both ways: one curve serves both areas.
        let cprPoints = points(helpful), cmdPoints = byMagnitude == helpful ? cprPoints : points(byMagnitude)
        return MIBScores(cprPoints: cprPoints, cmdPoints: cmdPoints, cpr: MIBScores.area(cprPoints) { $0 },
                         cmd: MIBScores.area(cmdPoints) { abs(1 - $0) })
    }
}

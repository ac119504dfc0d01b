import Foundation
import Transformer

// Node-level circuits (design §6, §7): nodes scored by EAP/EAP-IG or by node patching, the top
// nodes kept, and the circuit made of the edges between them.

extension CircuitGraph {
    /// Dense indices of the edges out of the sender at index `s` in `senders`, one per receiver reading it.
    public func outgoingEdges(ofSender s: Int) -> [Int] {
        receivers.indices.filter { upstreamCount(receiverAt: $0) > s }.map { edgeOffsets[$0] + s }
    }

    /// Each sender's score (in `senders` order) from edge scores: the sum over its outgoing edges.
    ///
    /// For EAP and EAP-IG this is the same estimate for corrupting the node's output everywhere: their
    /// edge score is the derivative of the metric along that edge's α, so the derivative along all of a
    /// node's outgoing α at once is the sum.
    public func nodeScores(_ edgeScores: [Float]) -> [Float] {
        var scores = [Float](repeating: 0, count: senders.count)
        for r in receivers.indices {
            for s in 0..<upstreamCount(receiverAt: r) { scores[s] += edgeScores[edgeOffsets[r] + s] }
        }
        return scores
    }

    /// The edges among `nodes` (indices in `senders`): every edge from `input` or a kept node into
    /// `logits` or into a kept node's receivers, before pruning.
    public func edges(amongNodes nodes: some Sequence<Int>) -> [Int] {
        var kept = [Bool](repeating: false, count: senders.count)
        kept[0] = true
        for s in nodes { kept[s] = true }
        return receivers.indices.flatMap { r -> [Int] in
            guard receivers[r].node.map({ kept[index(of: $0)] }) ?? true else { return [] }
            return (0..<upstreamCount(receiverAt: r)).filter { kept[$0] }.map { edgeOffsets[r] + $0 }
        }
    }

    /// The heads and MLPs (indices in `senders`) that `rule` keeps by node score; `input` is never
    /// ranked, since every circuit starts there.
    public func selectNodes(_ scores: [Float], _ rule: Selection) throws -> [Int] {
        let ranked = Array(scores.dropFirst())
        switch rule {
        case .topN, .threshold: return rule.select(ranked, graph: self).map { $0 + 1 }
        case .greedy: throw ModelInputError("greedy selection grows edges from logits; choose nodes by top n or by a threshold")
        }
    }
}

/// A method that scores nodes: what `discover --level node` runs.
public protocol NodeScoringMethod: DiscoveryMethod {
    /// Every sender's score (in `CircuitGraph.senders` order, `input` first), and every edge's when
    /// the node scores come from them.
    func nodeScores(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> (nodes: [Float], edges: [Float]?)
}

extension EAPMethod: NodeScoringMethod {
    /// The sums of EAP or EAP-IG edge scores over each node's outgoing edges.
    public func nodeScores(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> (nodes: [Float], edges: [Float]?) {
        let edges = try scores(setup, progress: progress)
        return (setup.model.graph.nodeScores(edges), edges)
    }
}

extension ExactMethod: NodeScoringMethod {
    /// Node patching: one patched run per node (`NodePatching`).
    public func nodeScores(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> (nodes: [Float], edges: [Float]?) {
        guard edges == nil else { throw ModelInputError("node patching corrupts whole nodes; it takes no edge list") }
        let experiment = try setup.experiment()
        progress?(.note("node patching: one forward pass per node, \(experiment.graph.senders.count) nodes"))
        let clock = ProgressClock()
        let scores = NodePatching.scores(experiment) { done, total in
            progress?(.step("exact: \(done)/\(total) nodes, " + clock.pace(Double(done), of: Double(total), unit: "nodes"), final: done == total))
        }
        return (scores, nil)
    }
}

extension Discovery {
    /// Scores nodes with `method`, keeps the heads and MLPs `rule` chooses (by |score|), and makes the
    /// circuit of the edges among them (with `input` and `logits`), pruned and measured like an edge
    /// circuit. Its edges carry their edge scores when the node scores came from them, and 0 otherwise.
    public static func runNodes(
        _ method: NodeScoringMethod, on setup: DiscoverySetup, rule: Selection, heldOut: DiscoverySetup? = nil, progress: ProgressNote? = nil
    ) throws -> Result {
        let start = Date()
        let (nodeScores, edgeScores) = try method.nodeScores(setup, progress: progress)
        let methodSeconds = Date().timeIntervalSince(start)
        let experiment = try setup.experiment()
        let graph = experiment.graph
        progress?(.note(String(format: "scored %d nodes in %.1f s", nodeScores.count, methodSeconds)))
        let chosen = try graph.selectNodes(nodeScores, rule)
        let edges = graph.pruned(graph.edges(amongNodes: chosen))
        let selection: String
        switch rule {
        case .topN(let n): selection = "top \(n) nodes"
        default: selection = "nodes with \(rule.description)"
        }
        var circuit = try record(edges, method: method.name, selection: selection, score: { edgeScores?[$0] ?? 0 },
                                 experiment: experiment, setup: setup, heldOut: heldOut)
        let present = Set(edges.flatMap { e in [graph.edge(e).sender] + (graph.edge(e).receiver.node.map { [$0] } ?? []) })
        circuit.level = "node"
        circuit.nodes = chosen.filter { present.contains(graph.senders[$0]) }
            .sorted { abs(nodeScores[$0]) != abs(nodeScores[$1]) ? abs(nodeScores[$0]) > abs(nodeScores[$1]) : $0 < $1 }
            .map { Circuit.NodeRecord(name: graph.senders[$0].name, score: nodeScores[$0]) }
        circuit.nodeSummary = circuit.summarizeNodes()
        return Result(circuit: circuit, scores: edgeScores, methodSeconds: methodSeconds, curve: [])
    }
}

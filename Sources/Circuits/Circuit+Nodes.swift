import Transformer

extension Circuit {
    /// A head or MLP of a circuit and the circuit's edges at it.
    public struct NodeSummary: Codable, Sendable, Equatable {
        /// `a3.h2` or `m3`.
        public var node: String
        /// Circuit edges into the node (its q, k and v inputs for a head) and out of it.
        public var inDegree: Int, outDegree: Int
        /// Sum of the scores of its incoming and of its outgoing edges (for linear methods such as EAP,
        /// the outgoing sum estimates corrupting the node's output wherever the circuit reads it).
        public var inScore: Float, outScore: Float
        /// Sum of |score| over all its edges.
        public var absScore: Float

        enum CodingKeys: String, CodingKey {
            case node
            case inDegree = "in_degree"
            case outDegree = "out_degree"
            case inScore = "in_score"
            case outScore = "out_score"
            case absScore = "abs_score"
        }
    }

    /// Its heads and MLPs (not `input` or `logits`) with their edges' counts and scores, by decreasing
    /// `absScore` (ties in layer order).
    public func summarizeNodes() -> [NodeSummary] {
        var byName: [String: NodeSummary] = [:]
        func add(_ name: String, _ score: Float, incoming: Bool) {
            guard Sender(name: name).map({ $0 != .input }) ?? false else { return }
            var s = byName[name] ?? NodeSummary(node: name, inDegree: 0, outDegree: 0, inScore: 0, outScore: 0, absScore: 0)
            if incoming {
                s.inDegree += 1
                s.inScore += score
            } else {
                s.outDegree += 1
                s.outScore += score
            }
            s.absScore += abs(score)
            byName[name] = s
        }
        for e in edges {
            add(e.sender, e.score, incoming: false)
            add(e.receiver, e.score, incoming: true)
        }
        return byName.values.sorted { a, b in
            a.absScore != b.absScore ? a.absScore > b.absScore : Sender(name: a.node)! < Sender(name: b.node)!
        }
    }
}

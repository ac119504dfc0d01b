import Foundation
import Transformer

extension Circuit {
    /// The circuit as a Graphviz digraph (design §8): `input` at the bottom and `logits` at the top,
    /// one row for each layer's heads and one for its MLP, kept in order by invisible edges; heads are
    /// ellipses and MLPs boxes. An edge's colour gives its score's sign (red below 0, blue otherwise),
    /// its pen width |score| relative to the largest, and its label and arrowhead the head input it
    /// feeds (q ▶, k ▷, v ◆). A legend says so.
    ///
    /// - Parameter compact: draw one edge per sender and head for that head's q, k and v inputs, with
    ///   the sum of their scores and the ports as its label
    public func dot(compact: Bool = false) -> String {
        let drawn = compact ? Self.mergingPorts(edges) : edges.map { DrawnEdge(sender: $0.sender, receiver: $0.receiver, ports: $0.port ?? "",
                                                                                   score: $0.score, names: ["\($0.name) \($0.score)"]) }
        let maxScore = drawn.map { abs($0.score) }.max() ?? 1
        var nodes: [Row: Set<String>] = [:]
        for e in drawn {
            for node in [e.sender, e.receiver] { nodes[Self.place(of: node).row, default: []].insert(node) }
        }
        let rows = nodes.mapValues { $0.sorted { Self.place(of: $0).order < Self.place(of: $1).order } }

        var lines: [String] = []
        let size = (self.nodes.map { "\($0.count) nodes, " } ?? "") + "\(edges.count) edges"
        lines.append("// \(model) · \(task) · \(method) · \(metric.rawValue) · \(size) · faithfulness \(String(format: "%.3f", faithfulness))")
        lines.append("digraph circuit {")
        let comment = "model=\(model); task=\(task); method=\(method); metric=\(metric.rawValue); ablation=\(ablation.rawValue); "
            + (self.nodes.map { "level=node; nodes=\($0.count); " } ?? "") + "edges=\(edges.count); faithfulness=\(String(format: "%.4f", faithfulness))"
        lines.append("  comment=\(Self.quote(comment));")
        lines.append("  rankdir=BT; ranksep=0.6; nodesep=0.25; splines=true;")
        lines.append("  label=\(Self.quote("\(task) circuit on \(model): \(method), \(metric.rawValue), \(size), faithfulness \(String(format: "%.2f", faithfulness))")); labelloc=t; fontname=\"Helvetica\";")
        lines.append("  node [fontname=\"Helvetica\", fontsize=11, style=filled];")
        lines.append("  edge [arrowsize=0.6, fontname=\"Helvetica\"];")
        lines.append("  legend [shape=plaintext, style=\"\", fontsize=9, label=<\(Self.legend(compact: compact))>];")
        let ordered = rows.keys.sorted()
        // A node circuit's heads and MLPs show their node scores.
        let nodeScores = Dictionary(uniqueKeysWithValues: (self.nodes ?? []).map { ($0.name, $0.score) })
        for row in ordered {
            lines.append("  { rank=same; " + rows[row]!.map { node in
                let label = nodeScores[node].map { " [label=<\(node)<BR/><FONT POINT-SIZE=\"9\">\(String(format: "%+.3f", $0))</FONT>>]" } ?? ""
                return "\(Self.quote(node)) \(Self.style(of: node))\(label);"
            }.joined(separator: " ") + " }")
        }
        // Rows stay in layer order even where no edge of the circuit joins them.
        for (lower, upper) in zip(ordered, ordered.dropFirst()) {
            lines.append("  \(Self.quote(rows[lower]![0])) -> \(Self.quote(rows[upper]![0])) [style=invis];")
        }
        for e in drawn {
            let width = 0.5 + 3.5 * Double(abs(e.score)) / Double(max(maxScore, .leastNormalMagnitude))
            let color = e.score < 0 ? Self.negative : Self.positive
            var attributes = "color=\(color), penwidth=\(String(format: "%.2f", width)), tooltip=\(Self.quote(e.names.joined(separator: "; ")))"
            if !e.ports.isEmpty {
                let arrowhead = e.ports.count == 1 ? Self.arrowheads[e.ports]! : "normal"
                attributes += ", arrowhead=\(arrowhead), label=\(Self.quote(e.ports.map(String.init).joined(separator: ","))), fontsize=8, fontcolor=\(color)"
            }
            lines.append("  \(Self.quote(e.sender)) -> \(Self.quote(e.receiver)) [\(attributes)];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Colours of edges with negative and with other scores.
    private static let negative = "firebrick3", positive = "royalblue3"
    /// Arrowheads of edges into a head's query, key and value inputs.
    private static let arrowheads = ["q": "normal", "k": "onormal", "v": "diamond"]

    /// One edge of the picture: a circuit edge, or with `compact` a head's q, k and v edges from one sender.
    private struct DrawnEdge {
        var sender: String, receiver: String
        /// The head inputs it feeds, in q, k, v order (`qv`); empty for MLP and logits edges.
        var ports: String
        var score: Float
        /// The circuit edges it stands for, with their scores (its tooltip).
        var names: [String]
    }

    /// Edges with each sender's q, k and v edges into one head merged, scores summed, in the order of
    /// their strongest member.
    private static func mergingPorts(_ edges: [EdgeRecord]) -> [DrawnEdge] {
        var merged: [DrawnEdge] = [], position: [String: Int] = [:]
        for e in edges {
            let key = "\(e.sender)->\(e.receiver)"
            if let i = position[key] {
                merged[i].ports = "qkv".filter { merged[i].ports.contains($0) || e.port == String($0) }
                merged[i].score += e.score
                merged[i].names.append("\(e.name) \(e.score)")
            } else {
                position[key] = merged.count
                merged.append(DrawnEdge(sender: e.sender, receiver: e.receiver, ports: e.port ?? "", score: e.score, names: ["\(e.name) \(e.score)"]))
            }
        }
        return merged
    }

    /// The legend, as a Graphviz HTML-like label.
    private static func legend(compact: Bool) -> String {
        let rows = [
            "<B>legend</B>",
            "<FONT COLOR=\"\(negative)\">red</FONT>: score &lt; 0, corrupting the edge lowers the metric",
            "<FONT COLOR=\"\(positive)\">blue</FONT>: score &#8805; 0",
            "pen width: |score| relative to the largest",
            compact ? "q, k, v: the head inputs fed (score summed over them)" : "q &#9654;, k &#9655;, v &#9670;: the head input fed",
            "ellipse: attention head; box: MLP; grey: input and logits",
            "bottom to top: input, each layer's heads, its MLP, logits",
        ]
        return "<TABLE BORDER=\"1\" CELLBORDER=\"0\" CELLSPACING=\"1\" COLOR=\"grey60\">"
            + rows.map { "<TR><TD ALIGN=\"LEFT\">\($0)</TD></TR>" }.joined() + "</TABLE>"
    }

    /// A row of the picture, bottom to top: `input`, then per layer its heads (part 0) and its MLP (part 1), then `logits`.
    private struct Row: Hashable, Comparable {
        var layer: Int, part: Int

        static func < (a: Row, b: Row) -> Bool { (a.layer, a.part) < (b.layer, b.part) }
    }

    /// The row of a node and its position in it (heads by index).
    private static func place(of node: String) -> (row: Row, order: Int) {
        switch Sender(name: node) {
        case .head(let l, let h)?: return (Row(layer: l, part: 0), h)
        case .mlp(let l)?: return (Row(layer: l, part: 1), 0)
        default: return (Row(layer: node == "input" ? -1 : Int.max, part: 0), 0)
        }
    }

    private static func style(of node: String) -> String {
        switch node {
        case "input", "logits": return "[shape=box, fillcolor=\"#dddddd\"]"
        default:
            if case .mlp? = Sender(name: node) { return "[shape=box, fillcolor=\"#ffd8a8\"]" }
            return "[shape=ellipse, fillcolor=\"#c5dcf7\"]"
        }
    }

    private static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

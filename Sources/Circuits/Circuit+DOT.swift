import Foundation
import Transformer

extension Circuit {
    /// The circuit as a Graphviz digraph (design §8): `input` at the bottom and `logits` at the top,
    /// one rank per layer, heads and MLPs styled differently, q/k/v edges coloured (q magenta, k green,
    /// v blue), other edges black for positive and red for negative scores, pen width from |score|.
    public func dot() -> String {
        let maxScore = edges.map { abs($0.score) }.max() ?? 1
        var nodesByLayer: [Int: Set<String>] = [:]
        var nodes = Set<String>()
        for e in edges { nodes.insert(e.sender); nodes.insert(e.receiver) }
        for n in nodes { nodesByLayer[Self.layer(of: n), default: []].insert(n) }

        var lines: [String] = []
        lines.append("// \(model) · \(task) · \(method) · \(metric.rawValue) · \(edges.count) edges · faithfulness \(String(format: "%.3f", faithfulness))")
        lines.append("digraph circuit {")
        let comment = "model=\(model); task=\(task); method=\(method); metric=\(metric.rawValue); ablation=\(ablation.rawValue); "
            + "edges=\(edges.count); faithfulness=\(String(format: "%.4f", faithfulness))"
        lines.append("  comment=\(Self.quote(comment));")
        lines.append("  rankdir=BT; ranksep=0.6; nodesep=0.25; splines=true;")
        lines.append("  label=\(Self.quote("\(task) circuit on \(model): \(method), \(metric.rawValue), \(edges.count) edges, faithfulness \(String(format: "%.2f", faithfulness))")); labelloc=t; fontname=\"Helvetica\";")
        lines.append("  node [fontname=\"Helvetica\", fontsize=11, style=filled];")
        lines.append("  edge [arrowsize=0.5];")
        for layer in nodesByLayer.keys.sorted() {
            let members = nodesByLayer[layer]!.sorted { Self.order($0) < Self.order($1) }
            lines.append("  { rank=same; " + members.map { "\(Self.quote($0)) \(Self.style(of: $0));" }.joined(separator: " ") + " }")
        }
        for e in edges {
            let width = 0.5 + 3.5 * Double(abs(e.score)) / Double(max(maxScore, .leastNormalMagnitude))
            let color: String
            switch e.port {
            case "q": color = "magenta"
            case "k": color = "forestgreen"
            case "v": color = "blue"
            default: color = e.score >= 0 ? "black" : "red"
            }
            var attributes = "color=\(color), penwidth=\(String(format: "%.2f", width)), tooltip=\(Self.quote("\(e.name) \(e.score)"))"
            if let port = e.port { attributes += ", label=\(Self.quote(port)), fontsize=8, fontcolor=\(color)" }
            lines.append("  \(Self.quote(e.sender)) -> \(Self.quote(e.receiver)) [\(attributes)];")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Rank of a node: -1 for `input`, its layer for heads and MLPs, Int.max for `logits`.
    private static func layer(of node: String) -> Int {
        if node == "input" { return -1 }
        if node == "logits" { return Int.max }
        switch Sender(name: node) {
        case .head(let l, _)?, .mlp(let l)?: return l
        default: return 0
        }
    }

    /// Sort key placing heads in order, then the MLP.
    private static func order(_ node: String) -> (Int, Int) {
        switch Sender(name: node) {
        case .head(let l, let h)?: return (l, h)
        case .mlp(let l)?: return (l, Int.max)
        default: return (layer(of: node), 0)
        }
    }

    private static func style(of node: String) -> String {
        switch node {
        case "input": return "[shape=box, fillcolor=\"#dddddd\"]"
        case "logits": return "[shape=box, fillcolor=\"#dddddd\"]"
        default:
            if case .mlp? = Sender(name: node) { return "[shape=box, fillcolor=\"#ffd8a8\"]" }
            return "[shape=ellipse, fillcolor=\"#c5dcf7\"]"
        }
    }

    private static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

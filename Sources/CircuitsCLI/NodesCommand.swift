import Circuits
import Foundation

/// `circuits nodes`: a saved circuit by heads and MLPs.
enum NodesCommand: Subcommand {
    static let name = "nodes"
    static let summary = "Summarise a saved circuit by node: each head and MLP with its edges in and out and the sums of their scores."
    static let usage = "CIRCUIT.json [--top K] [--json]"
    static let options = [
        OptionSpec(name: "top", value: "K", help: "nodes to list, by Σ|score| of their edges (default: all)"),
        OptionSpec(name: "json", value: nil, help: "print JSON: the circuit file and its nodes (node, in_degree, out_degree, in_score, out_score, abs_score)"),
    ]

    /// What `--json` prints.
    struct Output: Encodable {
        let circuit: String
        let level: String
        let nodes: [Circuit.NodeSummary]
    }

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.count == 1 else {
            throw UsageError(description: "give one circuit file (got \(options.positionals.count))")
        }
        let path = options.positionals[0]
        let circuit = try Circuit.load(URL(fileURLWithPath: path))
        let top = try options.int("top", in: 0...Int.max)
        // Computed from the edges, so records written before the summary existed work too.
        let nodes = Array(circuit.summarizeNodes().prefix(top ?? .max))
        if options.flag("json") {
            try printJSON(Output(circuit: path, level: circuit.level ?? "edge", nodes: nodes))
        } else {
            print(table(nodes, top: nodes.count))
        }
        return 0
    }

    /// The first `top` nodes as a text table with a header line.
    static func table(_ nodes: [Circuit.NodeSummary], top: Int) -> String {
        var lines = ["nodes: \(nodes.count) heads and MLPs; in, out: the circuit's edges into and out of each, Σ score over each; Σ|score| over both",
                     "  node         in   out     Σ|score|   Σ score in  Σ score out"]
        for n in nodes.prefix(top) {
            lines.append(String(format: "  %@ %4d  %4d  %11.5f  %+11.5f  %+11.5f", n.node.padding(toLength: 10, withPad: " ", startingAt: 0),
                                n.inDegree, n.outDegree, n.absScore, n.inScore, n.outScore))
        }
        return lines.joined(separator: "\n")
    }
}

import Circuits
import Foundation
import Transformer

/// `circuits graph`: the computational graph's size and names for a model.
enum GraphCommand: Subcommand {
    static let name = "graph"
    static let summary = "Print a model's computational graph: counts of senders, receivers and edges, optionally every name."
    static let usage = "[--model M] [--names] [--json]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default \(DefaultModel.name))"),
        OptionSpec(name: "names", value: nil, help: "list every sender, receiver and edge name"),
        OptionSpec(name: "json", value: nil, help: "print JSON"),
    ]

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        let model = try loadModel(options.string("model"))
        let g = CircuitGraph(config: model.config)
        let names = options.flag("names")
        if options.flag("json") {
            struct Output: Encodable {
                let model: String, layers: Int, heads: Int, senders: Int, receivers: Int, edges: Int
                let senderNames: [String]?, receiverNames: [String]?, edgeNames: [String]?
                enum CodingKeys: String, CodingKey {
                    case model, layers, heads, senders, receivers, edges
                    case senderNames = "sender_names", receiverNames = "receiver_names", edgeNames = "edge_names"
                }
            }
            try printJSON(Output(
                model: model.source, layers: g.layers, heads: g.heads, senders: g.senders.count, receivers: g.receivers.count,
                edges: g.edgeCount, senderNames: names ? g.senders.map(\.name) : nil,
                receiverNames: names ? g.receivers.map(\.name) : nil,
                edgeNames: names ? (0..<g.edgeCount).map { g.edge($0).name } : nil))
            return 0
        }
        print("model      \(describe(model))")
        print("senders    \(g.senders.count) (input, \(g.layers * g.heads) heads, \(g.layers) MLPs)")
        print("receivers  \(g.receivers.count) (\(g.layers * g.heads * 3) head q/k/v inputs, \(g.layers) MLP inputs, logits)")
        print("edges      \(g.edgeCount)")
        if names {
            print("\nsenders:\n" + g.senders.map(\.name).joined(separator: " "))
            print("\nreceivers:\n" + g.receivers.map(\.name).joined(separator: " "))
            print("\nedges:")
            for e in 0..<g.edgeCount { print(g.edge(e).name) }
        }
        return 0
    }
}

import Circuits
import Foundation
import Transformer

/// `circuits attention`: attention patterns of chosen heads drawn as SVG heatmaps.
enum AttentionCommand: Subcommand {
    static let name = "attention"
    static let summary = "Draw the attention patterns of chosen heads (or a circuit's heads) on prompts as SVG heatmaps."
    static let usage = "(--heads a3.h2,a5.h0 | --circuit C.json) [--model M] [--out DIR] [--json] (\"prompt\"... | --task T | --data F [--examples N])"
    static let options = [
        OptionSpec(name: "heads", value: "LIST", help: "heads to draw, comma-separated: a3.h2,a5.h0"),
        OptionSpec(name: "circuit", value: "C.json", help: "draw every head of this circuit (its model is the default --model)"),
        OptionSpec(name: "model", value: "M", help: "model (default: the circuit's, else \(DefaultModel.name))"),
        OptionSpec(name: "out", value: "DIR", help: "folder for the SVG files HEAD-pN.svg (default attention)"),
        OptionSpec(name: "examples", value: "N", help: "how many of the --task/--data clean prompts to draw (default 3)"),
        OptionSpec(name: "json", value: nil, help: "print the patterns as JSON (the SVG files are written too)"),
    ] + inspectionPairOptions

    static func run(_ options: ParsedOptions) throws -> Int32 {
        let circuit = try options.string("circuit").map { try Circuit.load(URL(fileURLWithPath: $0)) }
        guard (circuit == nil) != (options.string("heads") == nil) else { throw UsageError(description: "give either --heads or --circuit") }
        let examples = try options.int("examples", default: 3, in: 1...Int.max)!
        let out = URL(fileURLWithPath: options.string("out") ?? "attention")
        let model = try loadModel(options.string("model") ?? circuit.flatMap { $0.model == DefaultModel.name ? nil : $0.model })
        let tokenizer = try requireTokenizer(model)
        let heads = try circuit.map { $0.heads(in: model.graph) } ?? parseHeads(options.string("heads")!, graph: model.graph)
        guard !heads.isEmpty else { throw UsageError(description: "the circuit has no attention heads") }
        let all = try InspectedPrompts(options, model: model)
        let prompts = options.positionals.isEmpty ? Array(all.tokens.prefix(examples)) : all.tokens
        let patterns = try AttentionPatterns.compute(model: model, prompts: prompts, heads: heads)
        var files: [String] = []
        for (p, tokens) in prompts.enumerated() {
            let labels = tokens.enumerated().map { "\($0) \(tokenLabel(tokenizer, $1))" }
            for (head, pattern) in zip(heads, patterns[p]) {
                let map = Heatmap(attention: pattern, labels: labels, title: "\(head.name) on prompt \(p + 1) (\(model.source))")
                let url = out.appendingPathComponent("\(head.name)-p\(p + 1).svg")
                try write(map.svg(), to: url)
                files.append(url.path)
            }
        }
        if options.flag("json") {
            struct Pattern: Encodable { let head: String, prompt: Int, tokens: [String], weights: [[Float]], file: String }
            var output: [Pattern] = []
            for (p, tokens) in prompts.enumerated() {
                for (i, (head, pattern)) in zip(heads, patterns[p]).enumerated() {
                    let n = tokens.count
                    output.append(Pattern(head: head.name, prompt: p + 1, tokens: tokens.map(tokenizer.tokenText),
                                          weights: (0..<n).map { Array(pattern[($0 * n)..<($0 * n + n)]) }, file: files[p * heads.count + i]))
                }
            }
            try printJSON(output)
        } else {
            files.forEach { print($0) }
        }
        note("wrote \(files.count) SVG files for \(heads.count) heads on \(prompts.count) prompts into \(out.path)")
        return 0
    }

    /// The heads named in `list` (`a3.h2,a5.h0`), each checked against the model.
    static func parseHeads(_ list: String, graph: CircuitGraph) throws -> [Sender] {
        try list.split(separator: ",").map { part in
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let sender = graph.sender(named: name), case .head = sender else {
                throw UsageError(description: "--heads: '\(name)' is not a head of this model (a0.h0 … a\(graph.layers - 1).h\(graph.heads - 1))")
            }
            return sender
        }
    }
}

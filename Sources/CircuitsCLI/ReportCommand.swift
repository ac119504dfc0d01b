import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits report`: one self-contained HTML page about a saved circuit.
enum ReportCommand: Subcommand {
    static let name = "report"
    static let summary = "Write one self-contained HTML page about a circuit: its graph, and per node its attribution, attention and edges."
    static let usage = "--circuit C.json [--model M] [--task T | --data F] [-n N] [--examples N] [--out FILE.html]"
    static let options = [
        OptionSpec(name: "circuit", value: "C.json", help: "circuit file written by `circuits discover`"),
        OptionSpec(name: "model", value: "M", help: "model (default: the circuit's)"),
        OptionSpec(name: "examples", value: "N", help: "prompts whose attention patterns each head shows (default 3)"),
        OptionSpec(name: "out", value: "FILE", help: "the HTML file (default: the circuit's file with .html)"),
    ] + inspectionPairOptions.map {
        $0.name != "task" ? $0 : OptionSpec(name: "task", value: "T", help: "built-in task (default: the circuit's own task, when it is a built-in one)")
    }

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        guard let path = options.string("circuit") else { throw UsageError(description: "missing --circuit") }
        let examples = try options.int("examples", default: 3, in: 0...Int.max)!
        let circuit = try Circuit.load(URL(fileURLWithPath: path))
        let model = try loadModel(options.string("model") ?? (circuit.model == DefaultModel.name ? nil : circuit.model))
        let tokenizer = try requireTokenizer(model)
        let builtIn = (try? TaskRegistry.located().names().contains(circuit.task)) ?? false
        let loaded = try loadPairs(options, model: model, defaultTask: builtIn ? circuit.task : nil)
        note("attributing the logit difference and drawing attention patterns on \(loaded.batch.count) pairs of \(loaded.source)")
        let report = try CircuitReport(model: model, circuit: circuit, pairs: loaded.batch, source: loaded.source, examples: examples) {
            tokenLabel(tokenizer, $0)
        }
        let out = URL(fileURLWithPath: options.string("out") ?? URL(fileURLWithPath: path).deletingPathExtension().path + ".html")
        try write(try report.html(), to: out)
        print(out.path)
        return 0
    }
}

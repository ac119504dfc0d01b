import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits task`: list, show, export and measure the built-in tasks.
enum TaskCommand: Subcommand {
    static let name = "task"
    static let summary = "List the built-in tasks, show one, export its pairs, or measure a model's baseline on it."
    static let usage = """
        list | show T [--model M] | export T [-n N] [--seed S] [-o FILE] [--model M] | baseline T [--model M] [-n N] [--seed S] [--metric M] [--json]

        The task specs are read from $CIRCUITKIT_TASKS when it is set, else from the first Tasks/ folder
        beside the circuits executable or in a folder above it (a build inside a checkout finds the
        checkout's; next to a copied executable, copy the checkout's Tasks/ folder too).
        """
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model whose tokenizer filters words and tokenizes (default \(DefaultModel.name))"),
        OptionSpec(name: "pairs", short: "n", value: "N", help: "number of pairs (default 100)"),
        OptionSpec(name: "seed", value: "S", help: "generation seed (default 0)"),
        OptionSpec(name: "output", short: "o", value: "FILE", help: "export: write JSONL here instead of stdout (an existing file is not overwritten)"),
        OptionSpec(name: "force", value: nil, help: "export: overwrite an existing --output file"),
        OptionSpec(name: "metric", value: "NAME", help: "baseline: metric (default: the task's)"),
        OptionSpec(name: "json", value: nil, help: "list/baseline: print JSON"),
    ]

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard let action = options.positionals.first else { throw UsageError(description: "missing action: list, show, export or baseline") }
        let registry = try TaskRegistry.located()
        let rest = Array(options.positionals.dropFirst())
        func taskName() throws -> String {
            guard rest.count == 1 else { throw UsageError(description: "\(action) takes one task name (\(try registry.names().joined(separator: ", ")))") }
            return rest[0]
        }
        switch action {
        case "list":
            guard rest.isEmpty else { throw UsageError(description: "list takes no arguments") }
            let specs = try registry.specs()
            if options.flag("json") {
                struct Entry: Encodable { let name, summary, source, metric: String }
                try printJSON(specs.map { Entry(name: $0.name, summary: $0.summary, source: $0.source, metric: $0.metric.rawValue) })
            } else {
                let width = specs.map(\.name.count).max() ?? 0
                for s in specs { print("\(s.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(s.summary) [\(s.metric.rawValue)]") }
            }
        case "show":
            let task = try registry.task(named: try taskName())
            let tokenizer = options.string("model") == nil && !DefaultModel.isCached ? nil : try requireTokenizer(loadModel(options.string("model")))
            print(task.overview(tokenizer: tokenizer))
        case "export":
            let name = try taskName()
            let model = try loadModel(options.string("model"))
            let count = try options.int("pairs", default: 100, in: 1...1_000_000)!
            let seed = try options.int("seed", default: 0, in: 0...Int.max)!
            let dataset = try registry.generate(name, count: count, seed: UInt64(seed), tokenizer: try requireTokenizer(model))
            for line in dataset.notes { note(line) }
            if let path = options.string("output") {
                let url = URL(fileURLWithPath: path)
                if FileManager.default.fileExists(atPath: url.path) && !options.flag("force") {
                    throw UsageError(description: "\(path) exists; pass --force to overwrite it")
                }
                try PairsFile.write(dataset.pairs, to: url)
                note("wrote \(dataset.pairs.count) pairs to \(path)")
            } else {
                print(PairsFile.jsonLines(dataset.pairs), terminator: "")
            }
        case "baseline":
            let name = try taskName()
            let model = try loadModel(options.string("model"))
            let count = try options.int("pairs", default: 100, in: 1...1_000_000)!
            let seed = try options.int("seed", default: 0, in: 0...Int.max)!
            let dataset = try registry.generate(name, count: count, seed: UInt64(seed), tokenizer: try requireTokenizer(model))
            let metric = try metricOption(options, default: dataset.metric)
            let baseline = try Baseline(model: model, pairs: PairBatch(dataset.tokenized), metric: metric)
            if options.flag("json") {
                struct Output: Encodable { let task: String; let model: String; let seed: Int; let notes: [String]; let baseline: Baseline }
                try printJSON(Output(task: name, model: model.source, seed: seed, notes: dataset.notes, baseline: baseline))
            } else {
                for line in dataset.notes { print("note: \(line)") }
                print("task \(name) on \(model.source), \(baseline.pairs) pairs (seed \(seed)), metric \(metric.rawValue)")
                print(String(format: "clean   %@ %8.4f   accuracy %.3f", metric.rawValue, baseline.clean, baseline.cleanAccuracy))
                print(String(format: "corrupt %@ %8.4f   accuracy %.3f", metric.rawValue, baseline.corrupt, baseline.corruptAccuracy))
            }
        default:
            throw UsageError(description: "unknown action '\(action)' (list, show, export, baseline)")
        }
        return 0
    }
}

import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits task`: list, show, export and measure the built-in tasks.
enum TaskCommand: Subcommand {
    static let name = "task"
    static let summary = "List the built-in tasks, show one, export its pairs, or measure a model's baseline on it."
    static let usage = """
        list | show T [--model M] | export T [-n N] [--seed S] [-o FILE] [--model M]
          | baseline (T | --task T | --data F) [--model M] [-n N] [--seed S] [--metric M] [--json]

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
        OptionSpec(name: "task", value: "T", help: "baseline: the built-in task (or give it as the argument)"),
        OptionSpec(name: "data", value: "F", help: "baseline: your own pairs file instead of a task: .jsonl (ours), .json (auto-circuit) or .csv (EAP-IG)"),
    ] + pairOptions.filter { ["format", "skip-invalid"].contains($0.name) } + [
        OptionSpec(name: "metric", value: "NAME", help: "baseline: metric (default: the task's; logit_diff for --data)"),
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
            guard rest.count <= 1 else { throw UsageError(description: "baseline takes one task name, or --task T or --data F") }
            let given = options.string("task") != nil || options.string("data") != nil
            guard rest.isEmpty == given else {
                throw UsageError(description: "baseline takes a task, as its argument or --task T, or your pairs with --data F (one of them)")
            }
            let model = try loadModel(options.string("model"))
            let tokenizer = try requireTokenizer(model)
            let loaded = try loadPairs(options.adding(["task": rest.first, "held-out": "0"], specs: Self.options), model: model)
            let metric = try metricOption(options, default: loaded.defaultMetric)
            let baseline = try Baseline(model: model, pairs: loaded.batch, metric: metric)
            let answers = AnswerTokens(loaded.batch, tokenizer: tokenizer)
            let seed = options.string("data") == nil ? try options.int("seed", default: 0, in: 0...Int.max)! : nil
            if options.flag("json") {
                struct Output: Encodable {
                    let task: String, data: String?, model: String, seed: Int?, notes: [String], baseline: Baseline, answers: AnswerTokens
                }
                try printJSON(Output(task: loaded.source, data: options.string("data"), model: model.source, seed: seed, notes: loaded.notes,
                                     baseline: baseline, answers: answers))
            } else {
                for line in loaded.notes { print("note: \(line)") }
                print("\(options.string("data") == nil ? "task" : "data") \(loaded.source) on \(model.source), \(baseline.pairs) pairs"
                      + (seed.map { " (seed \($0))" } ?? "") + ", metric \(metric.rawValue)")
                print(String(format: "clean   %@ %8.4f   accuracy %.3f", metric.rawValue, baseline.clean, baseline.cleanAccuracy))
                print(String(format: "corrupt %@ %8.4f   accuracy %.3f", metric.rawValue, baseline.corrupt, baseline.corruptAccuracy))
                print("correct answers    " + answers.correct.description)
                print("incorrect answers  " + answers.incorrect.description)
                print("first pair         \(quoted(tokenizer.decode(loaded.batch.clean[0]))) / \(quoted(tokenizer.decode(loaded.batch.corrupt[0])))")
            }
        default:
            throw UsageError(description: "unknown action '\(action)' (list, show, export, baseline)")
        }
        return 0
    }
}

/// The answer tokens of a batch of pairs, decoded, with how many pairs name each.
struct AnswerTokens: Encodable {
    /// One answer token.
    struct Entry: Encodable {
        let token: String, id: Int, pairs: Int
    }

    /// Tokens by decreasing number of pairs (then by id).
    struct Tokens: Encodable, CustomStringConvertible {
        let entries: [Entry]

        init(_ lists: [[Int]], tokenizer: Tokenizer) {
            var counts: [Int: Int] = [:]
            for list in lists { for id in Set(list) { counts[id, default: 0] += 1 } }
            entries = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .map { Entry(token: tokenizer.tokenText($0.key), id: $0.key, pairs: $0.value) }
        }

        func encode(to encoder: Encoder) throws { try entries.encode(to: encoder) }

        /// The ten most frequent, e.g. `" Mary" (id 8346) ×52, …`.
        var description: String {
            let shown = entries.prefix(10).map { "\(quoted($0.token)) (id \($0.id)) ×\($0.pairs)" }
            return (shown + (entries.count > 10 ? ["… \(entries.count - 10) more"] : [])).joined(separator: ", ")
        }
    }

    let correct: Tokens, incorrect: Tokens

    init(_ batch: PairBatch, tokenizer: Tokenizer) {
        correct = Tokens(batch.correct, tokenizer: tokenizer)
        incorrect = Tokens(batch.incorrect, tokenizer: tokenizer)
    }
}

import Circuits
import Foundation
import Tasks
import Transformer

/// Options of the commands that read prompt pairs from a built-in task or a pairs file.
let pairOptions = [
    OptionSpec(name: "task", value: "T", help: "built-in task (ioi, greater-than, induction; default ioi)"),
    OptionSpec(name: "data", value: "F", help: "pairs file instead of a task: .jsonl (ours), .json (auto-circuit) or .csv (EAP-IG)"),
    OptionSpec(name: "format", value: "FMT", help: "pairs file format when the extension does not say: jsonl, auto-circuit, eap-ig"),
    OptionSpec(name: "skip-invalid", value: nil, help: "skip invalid pairs in --data (and report how many) instead of stopping"),
    OptionSpec(name: "pairs", short: "n", value: "N", help: "number of pairs (default 100; for --data, the first N)"),
    OptionSpec(name: "seed", value: "S", help: "seed for generating task pairs (default 0)"),
    OptionSpec(name: "held-out", value: "N", help: "fresh pairs to report faithfulness on too: the task's next seed, or the --data rows after the first -n (default: as many as -n; 0: none)"),
]

/// Prompt pairs ready for a model, with where they came from.
struct LoadedPairs {
    /// Task name, or the data file's name.
    let source: String
    /// The task's default metric (logit_diff for data files).
    let defaultMetric: Metric
    let batch: PairBatch
    /// Notes from the generator (e.g. the greater-than variant).
    let notes: [String]
    /// Fresh pairs that play no part in finding a circuit, and where they came from (nil: none asked or left).
    let heldOut: (source: String, batch: PairBatch)?
}

/// Reads `--task`/`--data` pairs for `model` (its tokenizer; a pairs file's prompts must also fit
/// its context), reporting ignored fields and skipped lines on stderr.
func loadPairs(_ options: ParsedOptions, model: TransformerModel, defaultTask: String? = "ioi") throws -> LoadedPairs {
    let tokenizer = try requireTokenizer(model)
    let count = try options.int("pairs", default: 100, in: 1...1_000_000)!
    let heldOutCount = try options.int("held-out", default: count, in: 0...1_000_000)!
    if let path = options.string("data") {
        guard options.string("task") == nil else { throw UsageError(description: "give either --task or --data, not both") }
        let format = try options.string("format").map { name in
            guard let format = PairsFormat(rawValue: name) else {
                throw UsageError(description: "unknown --format '\(name)' (jsonl, auto-circuit, eap-ig)")
            }
            return format
        }
        let contents = try PairsFile.read(URL(fileURLWithPath: path), format: format, tokenizer: tokenizer,
                                          skipInvalid: options.flag("skip-invalid"), contextLength: model.config.contextLength)
        if !contents.ignoredFields.isEmpty {
            let plural = contents.ignoredFields.count == 1 ? "" : "s"
            note("\(path): ignored unknown field\(plural) " + contents.ignoredFields.map(\.debugDescription).joined(separator: ", "))
        }
        if !contents.skipped.isEmpty {
            note("skipped \(contents.skipped.count) invalid pairs; first: \(contents.skipped[0])")
        }
        if try format ?? PairsFormat(inferringFrom: URL(fileURLWithPath: path)) == .eapIG {
            // EAP-IG's CSV gives answers as token ids of the tokenizer it was made with: show what they are here.
            let shown = zip(contents.pairs, contents.tokenized).prefix(3).map { pair, tokens in
                "\(quoted(pair.correct[0], quote: "\"")) (\(tokens.correct[0]))"
                    + (tokens.incorrect.first.map { " vs \(quoted(pair.incorrect[0], quote: "\"")) (\($0))" } ?? "")
            }
            note("\(path): answer ids decode as " + shown.joined(separator: ", ") + "; ids only mean these tokens if the file was made with this model's tokenizer")
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        let pairs = Array(contents.tokenized.prefix(count))
        let rest = Array(contents.tokenized.dropFirst(count).prefix(heldOutCount))
        var notes: [String] = []
        if heldOutCount > 0 && rest.isEmpty {
            notes.append("no fresh pairs: \(name) has \(contents.tokenized.count) valid pairs and all are used; pass a smaller -n to hold some out")
        }
        let heldOut = rest.isEmpty ? nil : (source: "\(name) pairs \(count + 1)–\(count + rest.count)", batch: PairBatch(rest))
        return LoadedPairs(source: name, defaultMetric: .logitDiff, batch: PairBatch(pairs), notes: notes, heldOut: heldOut)
    }
    guard let name = options.string("task") ?? defaultTask else { throw UsageError(description: "give --task or --data") }
    let seed = try options.int("seed", default: 0, in: 0...Int.max)!
    let registry = try TaskRegistry.located()
    let dataset = try registry.generate(name, count: count, seed: UInt64(seed), tokenizer: tokenizer)
    let heldOut = try heldOutCount == 0 ? nil
        : (source: "\(name) seed \(UInt64(seed) + 1)",
           batch: PairBatch(registry.generate(name, count: heldOutCount, seed: UInt64(seed) + 1, tokenizer: tokenizer).tokenized))
    return LoadedPairs(source: name, defaultMetric: dataset.metric, batch: PairBatch(dataset.tokenized), notes: dataset.notes,
                       heldOut: heldOut)
}

/// Parses `--metric`, falling back to `fallback`.
func metricOption(_ options: ParsedOptions, default fallback: Metric) throws -> Metric {
    guard let name = options.string("metric") else { return fallback }
    guard let metric = Metric(rawValue: name) else {
        throw UsageError(description: "unknown --metric '\(name)' (\(Metric.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return metric
}

/// Parses `--ablation`, default resample.
func ablationOption(_ options: ParsedOptions) throws -> Ablation {
    guard let name = options.string("ablation") else { return .resample }
    guard let ablation = Ablation(rawValue: name) else {
        throw UsageError(description: "unknown --ablation '\(name)' (\(Ablation.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return ablation
}

/// The model's tokenizer, or an error saying the model has none.
func requireTokenizer(_ model: TransformerModel) throws -> Tokenizer {
    guard let tokenizer = model.tokenizer else { throw ModelFileError(model.source, "the model files carry no tokenizer") }
    return tokenizer
}

import Circuits
import Foundation
import Transformer

/// `circuits attribute`: integrated-gradients attribution of a task's metric to the positions of its prompts.
enum AttributeCommand: Subcommand {
    static let name = "attribute"
    static let summary = "Input attribution: integrated gradients of the metric along the corrupted-to-clean embeddings, per prompt position."
    static let usage = "--task T | --data F [-n N] [--model M] [--metric M] [--steps K] [--batch-size B] [--show N] [--svg FILE] [--json]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default \(DefaultModel.name))"),
        OptionSpec(name: "metric", value: "NAME", help: "logit_diff, prob_diff, kl or logprob (default: the task's)"),
        OptionSpec(name: "steps", value: "K", help: "points on the path from the corrupted to the clean embeddings (default 20)"),
        OptionSpec(name: "batch-size", value: "B", help: "interpolated prompts per forward and backward pass (default 32; lower it to save memory)"),
        OptionSpec(name: "show", value: "N", help: "pairs printed (and drawn with --svg) in full (default 3; --json has all)"),
        OptionSpec(name: "svg", value: "FILE", help: "also draw the shown pairs' attributions as a token heatmap"),
        OptionSpec(name: "json", value: nil, help: "print JSON"),
    ] + inspectionPairOptions

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        guard options.string("task") != nil || options.string("data") != nil else { throw UsageError(description: "give --task or --data") }
        let steps = try options.int("steps", default: 20, in: 1...100_000)!
        let batchSize = try options.int("batch-size", default: 32, in: 1...Int.max)!
        let show = try options.int("show", default: 3, in: 0...Int.max)!
        guard show > 0 || options.string("svg") == nil else { throw UsageError(description: "--svg draws the shown pairs; give --show 1 or more") }
        let model = try loadModel(options.string("model"))
        let tokenizer = try requireTokenizer(model)
        let loaded = try loadPairs(options, model: model)
        let metric = try metricOption(options, default: loaded.defaultMetric)
        let pairs = loaded.batch
        let result = try InputAttribution(model: model, pairs: pairs, metric: metric, steps: steps, batchSize: batchSize,
                                          progress: progressNote("attributed", "interpolated prompts"))
        let shown = Array(pairs.clean.indices.prefix(show))
        let svg = options.string("svg").map { URL(fileURLWithPath: $0) }
        if let svg {
            let map = result.heatmap(pairs: shown, title: "\(loaded.source): attribution of \(metric.rawValue) to each clean token "
                                     + "(\(steps) steps, \(model.source))") { tokenLabel(tokenizer, pairs.clean[$0][$1]) }
            try write(map.svg(), to: svg)
            note("wrote \(svg.path)")
        }
        let errors = result.completenessErrors
        let meanGap = zip(result.cleanMetrics, result.corruptMetrics).map { abs($0 - $1) }.reduce(0, +) / Double(pairs.count)
        if let worst = errors.map(abs).max(), meanGap > 0, worst > 0.05 * meanGap {
            note(String(format: "a pair's attributions miss its metric difference by %.0f%% of the mean difference; "
                        + "more --steps (now %d) integrate more closely", 100 * worst / meanGap, steps))
        }
        if options.flag("json") {
            struct Pair: Encodable {
                let clean: [String], corrupt: [String], correct: [String], incorrect: [String]
                let cleanMetric: Double, corruptMetric: Double, attribution: [Double], completenessError: Double
                enum CodingKeys: String, CodingKey {
                    case clean, corrupt, correct, incorrect, attribution
                    case cleanMetric = "clean_metric", corruptMetric = "corrupt_metric", completenessError = "completeness_error"
                }
            }
            struct Output: Encodable {
                let model: String, task: String, pairs: Int, metric: String, steps: Int, clean: Double, corrupt: Double
                let attributions: [Pair], svg: String?
            }
            let texts = { (ids: [Int]) in ids.map(tokenizer.tokenText) }
            try printJSON(Output(model: model.source, task: loaded.source, pairs: pairs.count, metric: metric.rawValue, steps: steps,
                                 clean: result.cleanMetric, corrupt: result.corruptMetric, attributions: pairs.clean.indices.map { b in
                Pair(clean: texts(pairs.clean[b]), corrupt: texts(pairs.corrupt[b]), correct: texts(pairs.correct[b]),
                     incorrect: texts(pairs.incorrect[b]), cleanMetric: result.cleanMetrics[b], corruptMetric: result.corruptMetrics[b],
                     attribution: result.attributions[b], completenessError: errors[b])
            }, svg: svg?.path))
            return 0
        }
        let meanSum = result.attributions.map { $0.reduce(0, +) }.reduce(0, +) / Double(pairs.count)
        print("\(loaded.source), \(pairs.count) pairs, \(metric.rawValue), \(steps) steps: clean \(String(format: "%.4f", result.cleanMetric)), "
              + "corrupt \(String(format: "%.4f", result.corruptMetric)), difference \(String(format: "%.4f", result.cleanMetric - result.corruptMetric))")
        print(String(format: "attributions sum to %.4f on average; completeness error per pair: mean |error| %.2g, worst %.2g", meanSum,
                     errors.map(abs).reduce(0, +) / Double(errors.count), errors.map(abs).max() ?? 0))
        let column = { (text: String) in text.padding(toLength: 18, withPad: " ", startingAt: 0) }
        for b in shown {
            print("\npair \(b + 1): correct \(pairs.correct[b].map { tokenLabel(tokenizer, $0) }.joined(separator: " ")), "
                  + "incorrect \(pairs.incorrect[b].map { tokenLabel(tokenizer, $0) }.joined(separator: " ")); "
                  + String(format: "clean %.4f, corrupt %.4f", result.cleanMetrics[b], result.corruptMetrics[b]))
            print("  pos  " + column("clean") + column("corrupt") + "attribution")
            for (p, value) in result.attributions[b].enumerated() {
                print(String(format: "%5d  ", p) + column(tokenLabel(tokenizer, pairs.clean[b][p]))
                      + column(tokenLabel(tokenizer, pairs.corrupt[b][p])) + String(format: "%11.4f", value))
            }
        }
        if let svg { print("\nheatmap: \(svg.path)") }
        return 0
    }
}

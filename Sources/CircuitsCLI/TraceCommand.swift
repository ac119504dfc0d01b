import Circuits
import Foundation
import Transformer

/// `circuits trace`: causal tracing of a task's pairs, drawn as an SVG heatmap.
enum TraceCommand: Subcommand {
    static let name = "trace"
    static let summary = "Causal tracing: restore the clean residual stream at one (layer, position) of the corrupted run; heatmap of the recovery."
    static let usage = "--task T | --data F [-n N] [--model M] [--metric M] [--out DIR] [--name NAME] [--batch-rows R] [--json]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default \(DefaultModel.name))"),
        OptionSpec(name: "metric", value: "NAME", help: "logit_diff, prob_diff, kl or logprob (default: the task's)"),
        OptionSpec(name: "out", value: "DIR", help: "folder for NAME-trace.svg (default Graphs)"),
        OptionSpec(name: "name", value: "NAME", help: "file name stem (default: the task or data file)"),
        OptionSpec(name: "batch-rows", value: "R", help: "token rows per batched pass (default 4096; lower it to save memory)"),
        OptionSpec(name: "json", value: nil, help: "print the recovery grid as JSON"),
    ] + inspectionPairOptions

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        guard options.string("task") != nil || options.string("data") != nil else { throw UsageError(description: "give --task or --data") }
        let batchRows = try options.int("batch-rows", default: 4096, in: 1...Int.max)!
        let model = try loadModel(options.string("model"))
        let tokenizer = try requireTokenizer(model)
        let loaded = try loadPairs(options, model: model)
        let metric = try metricOption(options, default: loaded.defaultMetric)
        // Positions are compared across pairs, so every traced pair must be as long as the first.
        let length = loaded.batch.clean[0].count
        let kept = loaded.batch.clean.indices.filter { loaded.batch.clean[$0].count == length }
        if kept.count < loaded.batch.count {
            note("tracing the \(kept.count) of \(loaded.batch.count) pairs that have \(length) tokens like the first")
        }
        let batch = PairBatch(clean: kept.map { loaded.batch.clean[$0] }, corrupt: kept.map { loaded.batch.corrupt[$0] },
                              correct: kept.map { loaded.batch.correct[$0] }, incorrect: kept.map { loaded.batch.incorrect[$0] })
        let trace = try CausalTrace(model: model, pairs: batch, metric: metric)
        let clock = ProgressClock()
        let grid = trace.grid(batchRows: batchRows) { done, total in
            showProgress(.step("traced \(done)/\(total) (layer, position) runs, " + clock.pace(Double(done), of: Double(total)), final: done == total))
        }
        let layers = model.config.layers
        let points = (0..<layers).map { ResidualPoint.pre($0, layers: layers).name }
        let labels = batch.clean[0].enumerated().map { "\($0) \(tokenLabel(tokenizer, $1))" }
        let stem = options.string("name") ?? URL(fileURLWithPath: loaded.source).deletingPathExtension().lastPathComponent
        let url = URL(fileURLWithPath: options.string("out") ?? "Graphs").appendingPathComponent("\(stem)-trace.svg")
        let low = min(0, grid.min() ?? 0), high = max(1, grid.max() ?? 1)
        let map = Heatmap(title: "\(stem): recovery of \(metric.rawValue) restoring the clean stream (\(batch.count) pairs, \(model.source))",
                          rowLabels: points, columnLabels: labels, rowAxis: "restored point", columnAxis: "position (first pair's tokens)",
                          values: grid, range: low...high)
        try write(map.svg(), to: url)
        note("wrote \(url.path)")
        if options.flag("json") {
            struct Output: Encodable {
                let model: String, task: String, pairs: Int, metric: String, clean: Double, corrupt: Double
                let points: [String], tokens: [String], recovery: [[Double]], file: String
            }
            try printJSON(Output(model: model.source, task: loaded.source, pairs: batch.count, metric: metric.rawValue,
                                 clean: trace.cleanMetric, corrupt: trace.corruptMetric, points: points,
                                 tokens: batch.clean[0].map(tokenizer.tokenText),
                                 recovery: (0..<layers).map { Array(grid[($0 * length)..<($0 * length + length)]) }, file: url.path))
            return 0
        }
        print("\(loaded.source), \(batch.count) pairs, \(metric.rawValue): clean \(String(format: "%.4f", trace.cleanMetric)), "
              + "corrupt \(String(format: "%.4f", trace.corruptMetric))")
        print("recovery (M − M_corrupt)/(M_clean − M_corrupt), restoring one position entering each block:")
        print("position \\ block".padding(toLength: 26, withPad: " ", startingAt: 0) + (0..<layers).map { String(format: "%6d", $0) }.joined())
        for (p, label) in labels.enumerated() {
            print(label.padding(toLength: 26, withPad: " ", startingAt: 0)
                  + (0..<layers).map { String(format: "%6.2f", grid[$0 * length + p]) }.joined())
        }
        print("heatmap: \(url.path)")
        return 0
    }
}

import Circuits
import Foundation
import Transformer

/// `circuits dla`: direct logit attribution of a task's logit difference.
enum DLACommand: Subcommand {
    static let name = "dla"
    static let summary = "Direct logit attribution: each head's and MLP's direct share of the logit difference, through the frozen final norm."
    static let usage = "--task T | --data F [-n N] [--model M] [--top K] [--json]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default \(DefaultModel.name))"),
        OptionSpec(name: "top", value: "K", help: "components listed in the text output, by |contribution| (default 20)"),
        OptionSpec(name: "json", value: nil, help: "print JSON (every component)"),
    ] + inspectionPairOptions

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        guard options.string("task") != nil || options.string("data") != nil else { throw UsageError(description: "give --task or --data") }
        let top = try options.int("top", default: 20, in: 1...Int.max)!
        let model = try loadModel(options.string("model"))
        let loaded = try loadPairs(options, model: model)
        let dla = try DirectLogitAttribution(model: model, pairs: loaded.batch)
        let named = zip(dla.senders.map(\.name), dla.contributions).map { (name: $0, value: $1) }
        if options.flag("json") {
            struct Output: Encodable {
                let model: String, task: String, pairs: Int, logitDiff: Double, total: Double
                let components: [String: Double], attentionBias: Double, normBias: Double
                enum CodingKeys: String, CodingKey {
                    case model, task, pairs, total, components
                    case logitDiff = "logit_diff", attentionBias = "attention_bias", normBias = "final_norm_bias"
                }
            }
            try printJSON(Output(model: model.source, task: loaded.source, pairs: loaded.batch.count, logitDiff: dla.logitDiff,
                                 total: dla.total, components: Dictionary(uniqueKeysWithValues: named),
                                 attentionBias: dla.attentionBias, normBias: dla.normBias))
            return 0
        }
        print("model: \(describe(model))")
        print("\(loaded.source), \(loaded.batch.count) pairs: clean logit diff \(String(format: "%.4f", dla.logitDiff)), "
              + "sum of the terms \(String(format: "%.4f", dla.total))")
        print(String(format: "attention output biases %9.4f", dla.attentionBias))
        print(String(format: "final norm bias         %9.4f", dla.normBias))
        print("top \(min(top, named.count)) components by |direct effect|:")
        for c in named.sorted(by: { abs($0.value) > abs($1.value) }).prefix(top) {
            print(c.name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%9.4f", c.value))
        }
        return 0
    }
}

import Circuits
import Foundation
import Kernels
import Transformer

/// `circuits lens`: the logit lens on prompts or on the clean prompts of task pairs.
enum LensCommand: Subcommand {
    static let name = "lens"
    static let summary = "Logit lens: the final norm and unembedding applied to the residual stream before and after every attention and MLP."
    static let usage = "[--model M] [--top K] [--all-positions] [--json] \"prompt\"...  |  --task T | --data F [-n N]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model (default \(DefaultModel.name))"),
        OptionSpec(name: "top", value: "K", help: "top tokens per reading (default 5)"),
        OptionSpec(name: "all-positions", value: nil, help: "read every position (default: each prompt's last)"),
        OptionSpec(name: "show", value: "N", help: "prompts printed in full in the text output (default 2; --json has all)"),
        OptionSpec(name: "json", value: nil, help: "print JSON"),
    ] + inspectionPairOptions

    static func run(_ options: ParsedOptions) throws -> Int32 {
        let top = try options.int("top", default: 5, in: 1...1000)!
        let show = try options.int("show", default: 2, in: 0...Int.max)!
        let model = try loadModel(options.string("model"))
        let tokenizer = try requireTokenizer(model)
        let prompts = try InspectedPrompts(options, model: model)
        let readings = try LogitLens.read(model: model, prompts: prompts.tokens, correct: prompts.correct, incorrect: prompts.incorrect,
                                          positions: options.flag("all-positions") ? .all : .last, top: top)
        let label = { (id: Int) in tokenLabel(tokenizer, id) }
        if options.flag("json") {
            struct Score: Encodable { let id: Int, text: String, logit: Float, probability: Float, rank: Int }
            struct Reading: Encodable {
                let point: String, position: Int, token: String, top: [Score], correct: [Score], incorrect: [Score]
                let logitDiff: Double?
                enum CodingKeys: String, CodingKey { case point, position, token, top, correct, incorrect, logitDiff = "logit_diff" }
            }
            struct Prompt: Encodable { let tokens: [String], readings: [Reading] }
            struct Output: Encodable { let model: String, source: String, prompts: [Prompt] }
            let score = { (s: TokenScore) in Score(id: s.id, text: tokenizer.tokenText(s.id), logit: s.logit, probability: s.probability, rank: s.rank) }
            try printJSON(Output(model: model.source, source: prompts.source, prompts: zip(prompts.tokens, readings).map { tokens, readings in
                Prompt(tokens: tokens.map(tokenizer.tokenText), readings: readings.map {
                    Reading(point: $0.point.name, position: $0.position, token: tokenizer.tokenText(tokens[$0.position]),
                            top: $0.top.map(score), correct: $0.correct.map(score), incorrect: $0.incorrect.map(score), logitDiff: $0.logitDiff)
                })
            }))
            return 0
        }
        print("model: \(describe(model))")
        let paired = !prompts.correct.allSatisfy(\.isEmpty)
        if paired && prompts.tokens.count > 1 { printMeans(readings, pairs: prompts.tokens.count, source: prompts.source) }
        for (i, (tokens, readings)) in zip(prompts.tokens, readings).enumerated().prefix(show) {
            print("\nprompt \(i + 1): " + tokens.map(label).joined(separator: " "))
            if paired {
                print("answers: correct " + prompts.correct[i].map(label).joined(separator: ", ")
                      + "; incorrect " + prompts.incorrect[i].map(label).joined(separator: ", "))
            }
            for (position, group) in Dictionary(grouping: readings, by: \.position).sorted(by: { $0.key < $1.key }) {
                print("\nposition \(position) \(label(tokens[position]))")
                let header = paired ? "  correct (logit p rank)   incorrect (logit p rank)  logit diff" : ""
                print("point".padding(toLength: 27, withPad: " ", startingAt: 0) + header + "  top \(top)")
                for r in group {
                    var line = r.point.name.padding(toLength: 27, withPad: " ", startingAt: 0)
                    if paired, let c = r.correct.first {
                        let w = r.incorrect.first
                        line += String(format: "  %8.3f %.3f %6d", c.logit, c.probability, c.rank)
                        line += w.map { String(format: "  %8.3f %.3f %6d", $0.logit, $0.probability, $0.rank) } ?? String(repeating: " ", count: 26)
                        line += r.logitDiff.map { String(format: "  %10.3f", $0) } ?? String(repeating: " ", count: 12)
                    }
                    print(line + "  " + r.top.map { "\(label($0.id)) \(String(format: "%.3f", $0.probability))" }.joined(separator: "  "))
                }
            }
        }
        return 0
    }

    /// The mean over pairs, at each pair's last position, of the logit difference, the correct answers'
    /// total probability and the best correct answer's rank, per point.
    private static func printMeans(_ readings: [[LensReading]], pairs: Int, source: String) {
        let last = readings.map { prompt in prompt.filter { $0.position == prompt.map(\.position).max() } }
        print("\nmean over \(pairs) pairs of \(source), last position:")
        print("point".padding(toLength: 27, withPad: " ", startingAt: 0) + "  logit diff  p(correct)  best correct rank")
        for (k, point) in last[0].map(\.point).enumerated() {
            let n = Double(pairs)
            let diff = last.reduce(0.0) { $0 + ($1[k].logitDiff ?? 0) } / n
            let p = last.reduce(0.0) { $0 + $1[k].correct.reduce(0.0) { $0 + Double($1.probability) } } / n
            let rank = last.reduce(0.0) { $0 + Double($1[k].correct.map(\.rank).min() ?? 0) } / n
            print(point.name.padding(toLength: 27, withPad: " ", startingAt: 0) + String(format: "  %10.3f  %10.4f  %17.1f", diff, p, rank))
        }
    }
}

import Foundation
import Kernels
import Transformer

/// `circuits run`: tokenizes a prompt and shows the model's top next tokens.
enum RunCommand: Subcommand {
    static let name = "run"
    static let summary = "Run the model on a prompt: its tokens and the top next tokens with logits and probabilities."
    static let usage = "[--model M] [--top K] [--json] \"prompt\""
    static let options = [
        OptionSpec(name: "model", value: "M", help: "a .gguf file, an HF model directory, an HF cache name (gpt2), or \(DefaultModel.name) (default)"),
        OptionSpec(name: "top", value: "K", help: "how many next tokens to show (default 10)"),
        OptionSpec(name: "json", value: nil, help: "print JSON instead of text"),
    ]

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard options.positionals.count == 1, let prompt = options.positionals.first else {
            throw UsageError(description: options.positionals.isEmpty ? "missing the prompt" : "give the prompt as one argument (quote it)")
        }
        let top = try options.int("top", default: 10, in: 1...1000)!
        let model = try loadModel(options.string("model"))
        guard let tokenizer = model.tokenizer else {
            throw ModelFileError(model.source, "the model files carry no tokenizer")
        }
        let tokens = tokenizer.encode(prompt)
        guard !tokens.isEmpty else { throw UsageError(description: "the prompt has no tokens") }
        let pass = try model.forward([tokens])
        let logits = pass.logits.array
        let probs = FloatBuffer(count: logits.count)
        softmaxForward(probs.pointer, pass.logits.pointer, 1, logits.count)
        let ranked = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(top)

        if options.flag("json") {
            struct Output: Encodable {
                struct Token: Encodable { let id: Int; let text: String }
                struct Next: Encodable { let id: Int; let text: String; let logit: Float; let probability: Float }
                let model: String
                let tokens: [Token]
                let next: [Next]
            }
            let output = Output(
                model: model.source, tokens: tokens.map { .init(id: $0, text: tokenizer.tokenText($0)) },
                next: ranked.map { .init(id: $0, text: tokenizer.tokenText($0), logit: logits[$0], probability: probs[$0]) })
            try printJSON(output)
            return 0
        }
        print("model: \(describe(model))")
        print("tokens (\(tokens.count)): " + tokens.map { "\($0) \(quoted(tokenizer.tokenText($0)))" }.joined(separator: " | "))
        print("top \(ranked.count) next tokens:")
        for (rank, id) in ranked.enumerated() {
            let text = quoted(tokenizer.tokenText(id))
            print(String(format: "%4d. %6d %@ logit %8.4f  p %.4f", rank + 1, id,
                         text.padding(toLength: max(14, text.count), withPad: " ", startingAt: 0), logits[id], probs[id]))
        }
        return 0
    }
}

/// Loads `--model` (default model when nil), with progress on stderr.
func loadModel(_ argument: String?) throws -> TransformerModel {
    let reference = ModelReference(argument)
    let start = Date()
    let model = try reference.load(progress: note)
    note(String(format: "loaded %@ in %.1f s", reference.description, Date().timeIntervalSince(start)))
    return model
}

/// One-line description of a loaded model.
func describe(_ model: TransformerModel) -> String {
    let c = model.config
    let millions = Double(model.parameterCount) / 1e6
    return String(format: "%@ (%@, %d layers, %d heads, %d kv heads, d=%d, %.0fM parameters)",
                  model.source, c.architecture, c.layers, c.heads, c.kvHeads, c.dModel, millions)
}

/// A token's text in double quotes with control characters escaped.
func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Prints a value as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

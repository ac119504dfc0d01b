import Circuits
import Foundation
import Transformer

/// Options shared by the commands that look inside a model on prompt pairs (`lens`, `dla`,
/// `attention`, `trace`): the pair options without `--held-out`, which only circuits need.
let inspectionPairOptions = pairOptions.filter { $0.name != "held-out" }

/// Token `id` as a table or axis label: its text quoted, control characters escaped.
func tokenLabel(_ tokenizer: Tokenizer, _ id: Int) -> String { quoted(tokenizer.tokenText(id)) }

/// A progress callback that notes `"<verb> done/total <unit>, elapsed, about … s left"` on stderr,
/// timed from this call.
func progressNote(_ verb: String, _ unit: String) -> (_ done: Int, _ total: Int) -> Void {
    let clock = ProgressClock()
    return { done, total in
        showProgress(.step("\(verb) \(done)/\(total) \(unit), " + clock.pace(Double(done), of: Double(total)), final: done == total))
    }
}

/// Writes `text` to `url`, creating its folder; errors name the file.
func write(_ text: String, to url: URL) throws {
    do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url, options: .atomic)
    } catch {
        throw UsageError(description: "cannot write \(url.path): \(error.localizedDescription)")
    }
}

/// `"a b c"` prompts given as arguments, or the clean prompts (with their answers) of `--task`/`--data`.
struct InspectedPrompts {
    /// Where the prompts came from: "command line", a task or a file.
    let source: String
    /// Token ids of each prompt.
    let tokens: [[Int]]
    /// Per prompt its correct answers (empty for prompts from the command line).
    let correct: [[Int]]
    /// Per prompt its incorrect answers.
    let incorrect: [[Int]]

    /// Reads the positional prompts, or else `--task`/`--data` pairs (one of the two is required).
    init(_ options: ParsedOptions, model: TransformerModel) throws {
        let tokenizer = try requireTokenizer(model)
        if !options.positionals.isEmpty {
            guard options.string("task") == nil, options.string("data") == nil else {
                throw UsageError(description: "give prompts as arguments or --task/--data, not both")
            }
            tokens = try options.positionals.map { prompt in
                let ids = tokenizer.encode(prompt)
                guard !ids.isEmpty else { throw UsageError(description: "the prompt \(quoted(prompt)) has no tokens") }
                return ids
            }
            source = "command line"
            correct = tokens.map { _ in [] }
            incorrect = correct
        } else {
            guard options.string("task") != nil || options.string("data") != nil else {
                throw UsageError(description: "give a prompt, --task or --data")
            }
            let loaded = try loadPairs(options, model: model)
            source = loaded.source
            tokens = loaded.batch.clean
            correct = loaded.batch.correct
            incorrect = loaded.batch.incorrect
        }
    }
}

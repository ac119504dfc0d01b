import Foundation
import Kernels
import Transformer

/// Induction (Elhage et al. 2021; Olsson et al. 2022), generated from `Tasks/induction/task.json`.
///
/// The clean prompt is a fixed prefix ("Words:") and a random sequence of distinct one-token
/// words followed by its first `repeatedLength` words again; the answer is the word that followed the last one at its
/// previous occurrence. The corrupt prompt does the same with a different sequence that shares
/// no word with the clean one, and its own answer is the incorrect answer, so the logit
/// difference is positive on clean prompts and negative on corrupt ones. The prefix gives the
/// prompt a stable first token: SmolLM2-135M copies far less reliably when a random word opens
/// the text (accuracy 0.63 instead of 0.85 on 120 prompts).
public struct InductionTask: PromptTask {
    private struct Body: Decodable {
        let prefix: String
        let sequenceLength: Int
        let repeatedLength: Int
        let words: [String]
    }

    /// The spec header.
    public let spec: TaskSpec
    /// Text before the sequence; the words follow it, each with a leading space.
    public let prefix: String
    /// Words in the random sequence (each distinct).
    public let sequenceLength: Int
    /// Words of the sequence repeated after it; the answer is the next one.
    public let repeatedLength: Int
    /// Candidate words, before one-token filtering.
    public let words: [String]

    /// Reads and checks the induction part of a spec.
    public init(spec: TaskSpec, data: Data) throws {
        let body = try TaskSpec.decode(Body.self, from: data, file: spec.url)
        self.spec = spec
        guard body.repeatedLength >= 1, body.repeatedLength < body.sequenceLength else {
            throw TaskError(spec.url.path, "repeated_length must be at least 1 and less than sequence_length")
        }
        try spec.checkWordList(body.words, field: "words")
        if body.prefix.last?.isWhitespace == true {
            throw TaskError(spec.url.path, "prefix must not end with a space (each word carries its own)")
        }
        prefix = body.prefix
        sequenceLength = body.sequenceLength
        repeatedLength = body.repeatedLength
        words = body.words
    }

    /// Prompt shape, corruption and word count (and how many are one token).
    public func details(tokenizer: Tokenizer?) -> [String] {
        var lines = [
            "prefix \(prefix.debugDescription), then a sequence of \(sequenceLength) distinct words and its first \(repeatedLength) again; "
                + "answer: word \(repeatedLength + 1) of the sequence",
            "corruption: a different sequence (no shared word), repeated the same way; its answer is the incorrect one",
            "candidate words: \(words.count)",
        ]
        if let tokenizer {
            lines.append("one token in this tokenizer: \(tokenizer.oneTokenWords(words).count) words")
        }
        return lines
    }

    /// Generates `count` pairs, each from `2 × sequenceLength` distinct words drawn from
    /// `SeededRandom(seed)`.
    public func generate(count: Int, seed: UInt64, tokenizer: Tokenizer) throws -> TaskDataset {
        let words = tokenizer.oneTokenWords(self.words)
        guard words.count >= 2 * sequenceLength else {
            throw TaskError(spec.name, "only \(words.count) words are one token in this tokenizer; "
                + "need \(2 * sequenceLength) for two disjoint sequences")
        }
        var rng = SeededRandom(seed: seed)
        var pairs: [PromptPair] = []
        var tokenized: [TokenizedPair] = []
        for _ in 0..<max(count, 0) {
            let drawn = rng.sample(words, count: 2 * sequenceLength)
            let cleanSequence = Array(drawn[..<sequenceLength])
            let corruptSequence = Array(drawn[sequenceLength...])
            func prompt(_ sequence: [String]) -> String {
                prefix + (sequence + sequence[..<repeatedLength]).map { " " + $0 }.joined()
            }
            let pair = PromptPair(clean: prompt(cleanSequence), corrupt: prompt(corruptSequence),
                                  correct: [" " + cleanSequence[repeatedLength]],
                                  incorrect: [" " + corruptSequence[repeatedLength]])
            tokenized.append(try checked(pair, tokenizer: tokenizer))
            pairs.append(pair)
        }
        return TaskDataset(task: spec.name, metric: spec.metric, pairs: pairs, tokenized: tokenized,
                           notes: ["\(words.count) words are one token"])
    }
}

import Foundation
import Transformer

/// A clean/corrupt prompt pair with the answers a task metric reads (design §9).
///
/// The canonical pairs-file line is this struct as JSON:
/// `{"clean": "...", "corrupt": "...", "correct": [" Mary"], "incorrect": [" John"]}`.
public struct PromptPair: Codable, Hashable, Sendable {
    /// The prompt that shows the behaviour.
    public var clean: String
    /// The prompt whose activations replace the clean ones when an edge is patched.
    public var corrupt: String
    /// Answers the behaviour predicts (each one token, usually with its leading space).
    public var correct: [String]
    /// Answers it should not predict.
    public var incorrect: [String]

    /// Creates a pair.
    public init(clean: String, corrupt: String, correct: [String], incorrect: [String]) {
        self.clean = clean
        self.corrupt = corrupt
        self.correct = correct
        self.incorrect = incorrect
    }

    /// Tokenizes the pair and checks it: non-empty prompts of the same token count, non-empty
    /// answer lists, every answer one token, no answer both correct and incorrect.
    public func tokenized(with tokenizer: Tokenizer) throws(PairProblem) -> TokenizedPair {
        let cleanIDs = tokenizer.encode(clean)
        let corruptIDs = tokenizer.encode(corrupt)
        if cleanIDs.isEmpty { throw .emptyPrompt(field: "clean") }
        if corruptIDs.isEmpty { throw .emptyPrompt(field: "corrupt") }
        func answerIDs(_ answers: [String], field: String) throws(PairProblem) -> [Int] {
            if answers.isEmpty { throw .emptyAnswers(field: field) }
            var ids: [Int] = []
            for answer in answers {
                let pieces = tokenizer.encode(answer)
                guard pieces.count == 1 else {
                    throw .multiTokenAnswer(answer: answer, pieces: pieces.map { tokenizer.decode([$0]) })
                }
                ids.append(pieces[0])
            }
            return ids
        }
        let pair = TokenizedPair(clean: cleanIDs, corrupt: corruptIDs,
                                 correct: try answerIDs(correct, field: "correct"),
                                 incorrect: try answerIDs(incorrect, field: "incorrect"))
        try pair.validate(tokenizer: tokenizer)
        return pair
    }
}

/// A prompt pair as token ids, ready for the model.
public struct TokenizedPair: Hashable, Sendable {
    /// Token ids of the clean prompt.
    public var clean: [Int]
    /// Token ids of the corrupt prompt (same count as `clean`).
    public var corrupt: [Int]
    /// Token ids of the correct answers.
    public var correct: [Int]
    /// Token ids of the incorrect answers.
    public var incorrect: [Int]

    /// Creates a tokenized pair without checking it (see `validate(tokenizer:)`).
    public init(clean: [Int], corrupt: [Int], correct: [Int], incorrect: [Int]) {
        self.clean = clean
        self.corrupt = corrupt
        self.correct = correct
        self.incorrect = incorrect
    }

    /// Checks the token-level rules: non-empty prompts of equal length, non-empty answer lists,
    /// ids inside the vocabulary, no token both correct and incorrect.
    public func validate(tokenizer: Tokenizer) throws(PairProblem) {
        if clean.isEmpty { throw .emptyPrompt(field: "clean") }
        if corrupt.isEmpty { throw .emptyPrompt(field: "corrupt") }
        if correct.isEmpty { throw .emptyAnswers(field: "correct") }
        if incorrect.isEmpty { throw .emptyAnswers(field: "incorrect") }
        for id in clean + corrupt + correct + incorrect where id < 0 || id >= tokenizer.vocabularySize {
            throw .tokenOutOfRange(id: id, vocabularySize: tokenizer.vocabularySize)
        }
        if clean.count != corrupt.count { throw .lengthMismatch(clean: clean.count, corrupt: corrupt.count) }
        if let shared = correct.first(where: Set(incorrect).contains) {
            throw .answerInBoth(answer: tokenizer.decode([shared]))
        }
    }
}

/// Why a prompt pair is not usable; the description is the reason text of an error message.
public enum PairProblem: Error, Equatable, CustomStringConvertible {
    /// A prompt tokenizes to nothing.
    case emptyPrompt(field: String)
    /// An answer list is empty.
    case emptyAnswers(field: String)
    /// An answer is not exactly one token; `pieces` are its tokens as text.
    case multiTokenAnswer(answer: String, pieces: [String])
    /// Clean and corrupt prompts have different token counts.
    case lengthMismatch(clean: Int, corrupt: Int)
    /// The same token is listed as correct and as incorrect.
    case answerInBoth(answer: String)
    /// A token id is outside the tokenizer's vocabulary.
    case tokenOutOfRange(id: Int, vocabularySize: Int)

    /// The reason as a sentence fragment for `file:line: reason`.
    public var description: String {
        switch self {
        case .emptyPrompt(let field):
            return "\(field) prompt is empty"
        case .emptyAnswers(let field):
            return "\(field) is an empty list; give at least one answer"
        case .multiTokenAnswer(let answer, let pieces):
            let list = pieces.prefix(8).map { quoted($0, quote: "\"") }.joined(separator: ", ") + (pieces.count > 8 ? ", …" : "")
            return "answer \(quoted(answer, quote: "\"")) is \(pieces.count) tokens (\(list)); answers must be one token"
        case .lengthMismatch(let clean, let corrupt):
            return "clean prompt is \(clean) tokens but corrupt is \(corrupt); they must have the same token count"
        case .answerInBoth(let answer):
            return "answer \(quoted(answer, quote: "\"")) is both correct and incorrect"
        case .tokenOutOfRange(let id, let size):
            return "token id \(id) is outside the vocabulary (0..<\(size))"
        }
    }
}

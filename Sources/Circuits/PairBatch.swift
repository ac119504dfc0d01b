import Transformer

/// Clean/corrupted prompt pairs as token ids, with each pair's answer tokens.
public struct PairBatch: Sendable, Equatable {
    /// Clean prompts.
    public var clean: [[Int]]
    /// Corrupted prompts, each as long as its clean prompt.
    public var corrupt: [[Int]]
    /// Correct answer tokens per pair.
    public var correct: [[Int]]
    /// Incorrect answer tokens per pair.
    public var incorrect: [[Int]]

    /// Creates a batch; `validate()` checks its shape.
    public init(clean: [[Int]], corrupt: [[Int]], correct: [[Int]], incorrect: [[Int]]) {
        self.clean = clean
        self.corrupt = corrupt
        self.correct = correct
        self.incorrect = incorrect
    }

    /// Number of pairs.
    public var count: Int { clean.count }

    /// Pairs `range` of this batch.
    public func slice(_ range: Range<Int>) -> PairBatch {
        PairBatch(clean: Array(clean[range]), corrupt: Array(corrupt[range]), correct: Array(correct[range]),
                  incorrect: Array(incorrect[range]))
    }

    /// Checks counts agree, pairs have equal lengths and every pair has a correct answer.
    public func validate() throws {
        guard count > 0 else { throw ModelInputError("no prompt pairs") }
        guard corrupt.count == count, correct.count == count, incorrect.count == count else {
            throw ModelInputError("pair batch fields have different counts")
        }
        for i in 0..<count {
            guard clean[i].count == corrupt[i].count else {
                throw ModelInputError("pair \(i): clean prompt has \(clean[i].count) tokens, corrupted prompt \(corrupt[i].count)")
            }
            guard !correct[i].isEmpty else { throw ModelInputError("pair \(i) has no correct answer") }
        }
    }
}

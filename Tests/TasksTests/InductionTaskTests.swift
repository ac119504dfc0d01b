import Foundation
import Tasks
import Transformer
import XCTest

/// The induction generator: structure of the repeated sequences and their answers.
final class InductionTaskTests: XCTestCase {
    private func task() throws -> InductionTask {
        try XCTUnwrap(try TaskFixtures.registry().task(named: "induction") as? InductionTask)
    }

    func testStructureWithGPT2() throws {
        try checkStructure(tokenizer: try TaskFixtures.gpt2(), reference: try TaskFixtures.expected().gpt2)
    }

    func testStructureWithSmolLM2() throws {
        try checkStructure(tokenizer: try TaskFixtures.smolLM2(), reference: try TaskFixtures.expected().smol())
    }

    private func checkStructure(tokenizer: Tokenizer, reference: Expected.Vocabulary) throws {
        let task = try task()
        XCTAssertGreaterThanOrEqual(task.sequenceLength, 10)
        let length = task.sequenceLength, repeated = task.repeatedLength
        let dataset = try task.generate(count: 100, seed: 5, tokenizer: tokenizer)
        XCTAssertEqual(dataset.pairs.count, 100)
        XCTAssertEqual(dataset.metric, .logitDiff)
        let words = Set(reference.inductionWords)
        let prefixLength = tokenizer.encode(task.prefix).count
        for (pair, tokens) in zip(dataset.pairs, dataset.tokenized) {
            XCTAssertTrue(pair.clean.hasPrefix(task.prefix + " ") && pair.corrupt.hasPrefix(task.prefix + " "), pair.clean)
            let clean = pair.clean.dropFirst(task.prefix.count).split(separator: " ").map(String.init)
            let corrupt = pair.corrupt.dropFirst(task.prefix.count).split(separator: " ").map(String.init)
            XCTAssertEqual(clean.count, length + repeated)
            XCTAssertEqual(corrupt.count, length + repeated)
            // One token per word (HF), so token and word positions agree after the prefix.
            XCTAssertEqual(tokens.clean.count, prefixLength + length + repeated)
            XCTAssertEqual(tokens.corrupt.count, prefixLength + length + repeated)
            XCTAssertTrue((clean + corrupt).allSatisfy(words.contains), pair.clean)
            // A sequence of distinct words, then its beginning again.
            XCTAssertEqual(Set(clean[..<length]).count, length)
            XCTAssertEqual(Array(clean[length...]), Array(clean[..<repeated]))
            XCTAssertEqual(Array(corrupt[length...]), Array(corrupt[..<repeated]))
            XCTAssertTrue(Set(clean).isDisjoint(with: corrupt), "the corrupt sequence is a different one")
            // Answer: the word after the last one at its previous occurrence.
            XCTAssertEqual(pair.correct, [" " + clean[repeated]])
            XCTAssertEqual(pair.incorrect, [" " + corrupt[repeated]])
            XCTAssertEqual(tokens.correct, [tokens.clean[prefixLength + repeated]])
            XCTAssertEqual(tokens.incorrect, [tokens.corrupt[prefixLength + repeated]])
        }
    }

    func testDeterministicForASeed() throws {
        let tokenizer = try TaskFixtures.gpt2(), task = try task()
        XCTAssertEqual(try task.generate(count: 20, seed: 1, tokenizer: tokenizer).pairs,
                       try task.generate(count: 20, seed: 1, tokenizer: tokenizer).pairs)
        XCTAssertNotEqual(try task.generate(count: 20, seed: 1, tokenizer: tokenizer).pairs,
                          try task.generate(count: 20, seed: 2, tokenizer: tokenizer).pairs)
    }
}

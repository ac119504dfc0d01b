import Foundation
import Tasks
import Transformer
import XCTest

/// The greater-than generator in both variants, against HF's token ids for the answers.
final class GreaterThanTaskTests: XCTestCase {
    private func task() throws -> GreaterThanTask {
        try XCTUnwrap(try TaskFixtures.registry().task(named: "greater-than") as? GreaterThanTask)
    }

    /// Noun, century and start year of a prompt "The {noun} lasted from the year {CC}{YY} to the year {CC}".
    private func parse(_ prompt: String) throws -> (noun: String, century: Int, year: Int) {
        let words = prompt.split(separator: " ").map(String.init)
        XCTAssertEqual(words.count, 11, prompt)
        XCTAssertEqual(words[0], "The")
        XCTAssertEqual(Array(words[2...5]), ["lasted", "from", "the", "year"])
        XCTAssertEqual(Array(words[7...9]), ["to", "the", "year"])
        let year = words[6], century = words[10]
        XCTAssertEqual(year.count, 4, prompt)
        XCTAssertEqual(String(year.prefix(2)), century, prompt)
        return (words[1], try XCTUnwrap(Int(century)), try XCTUnwrap(Int(year.suffix(2))))
    }

    func testSpecFollowsThePaper() throws {
        let task = try task()
        XCTAssertEqual(task.template, "The {NOUN} lasted from the year {CC}{YY} to the year {CC}")
        XCTAssertGreaterThanOrEqual(task.nouns.count, 30)
        XCTAssertEqual(task.corruptYear, 1)
        XCTAssertEqual(task.spec.metric, .probDiff)
    }

    func testGPT2UsesTwoDigitYearTokens() throws {
        let tokenizer = try TaskFixtures.gpt2(), reference = try TaskFixtures.expected().gpt2
        let task = try task()
        XCTAssertEqual(try task.variant(for: tokenizer), .twoDigitYears)
        let dataset = try task.generate(count: 200, seed: 0, tokenizer: tokenizer)
        XCTAssertEqual(dataset.pairs.count, 200)
        XCTAssertTrue(dataset.notes.contains { $0.contains("two-digit-years") }, "\(dataset.notes)")
        var years: Set<Int> = []
        for (pair, tokens) in zip(dataset.pairs, dataset.tokenized) {
            let clean = try parse(pair.clean), corrupt = try parse(pair.corrupt)
            XCTAssertEqual(corrupt.noun, clean.noun)
            XCTAssertEqual(corrupt.century, clean.century)
            XCTAssertEqual(corrupt.year, 1)
            XCTAssertTrue(task.centuries.contains(clean.century))
            XCTAssertTrue(reference.greaterThanNouns.contains(clean.noun))
            XCTAssertEqual(tokens.correct, (clean.year + 1...99).map { reference.twoDigitIds[$0][0] }, pair.clean)
            XCTAssertEqual(tokens.incorrect, (0...clean.year).map { reference.twoDigitIds[$0][0] }, pair.clean)
            XCTAssertEqual(tokens.clean.count, tokens.corrupt.count)
            // The year is the century token followed by the YY token, so the answer slot is a YY token.
            let yy = reference.twoDigitIds[clean.year][0]
            XCTAssertEqual(tokens.clean.filter { $0 == yy }.count, 1, pair.clean)
            years.insert(clean.year)
        }
        XCTAssertGreaterThan(years.count, 50, "start years cover the range")
    }

    func testSmolLM2UsesTheNextDigit() throws {
        let tokenizer = try TaskFixtures.smolLM2(), reference = try TaskFixtures.expected().smol()
        let task = try task()
        XCTAssertEqual(try task.variant(for: tokenizer), .singleDigits)
        let dataset = try task.generate(count: 200, seed: 0, tokenizer: tokenizer)
        XCTAssertTrue(dataset.notes.contains { $0.contains("single-digits") }, "\(dataset.notes)")
        var tensDigits: Set<Int> = []
        for (pair, tokens) in zip(dataset.pairs, dataset.tokenized) {
            let clean = try parse(pair.clean)
            let tens = clean.year / 10
            XCTAssertTrue((1...8).contains(tens), pair.clean)
            XCTAssertEqual(tokens.correct, (tens + 1...9).map { reference.digitIds[$0][0] }, pair.clean)
            XCTAssertEqual(tokens.incorrect, (0..<tens).map { reference.digitIds[$0][0] }, pair.clean)
            XCTAssertEqual(tokens.clean.count, tokens.corrupt.count)
            // The prompt ends with the century's two digit tokens.
            let centuryDigits = String(clean.century).map { reference.digitIds[Int(String($0))!][0] }
            XCTAssertEqual(Array(tokens.clean.suffix(2)), centuryDigits, pair.clean)
            tensDigits.insert(tens)
        }
        XCTAssertEqual(tensDigits, Set(1...8))
    }

    func testVariantAnswers() {
        let two = GreaterThanVariant.twoDigitYears.answers(year: 52)
        XCTAssertEqual(two.correct.first, "53")
        XCTAssertEqual(two.correct.count, 47)
        XCTAssertEqual(two.incorrect.first, "00")
        XCTAssertEqual(two.incorrect.last, "52")
        let digits = GreaterThanVariant.singleDigits.answers(year: 52)
        XCTAssertEqual(digits.correct, ["6", "7", "8", "9"])
        XCTAssertEqual(digits.incorrect, ["0", "1", "2", "3", "4"])
        XCTAssertFalse(GreaterThanVariant.singleDigits.isUsable(year: 5))
        XCTAssertFalse(GreaterThanVariant.singleDigits.isUsable(year: 95))
        XCTAssertFalse(GreaterThanVariant.twoDigitYears.isUsable(year: 99))
        XCTAssertTrue(GreaterThanVariant.twoDigitYears.isUsable(year: 0))
    }

    func testDeterministicForASeed() throws {
        let tokenizer = try TaskFixtures.gpt2(), task = try task()
        XCTAssertEqual(try task.generate(count: 30, seed: 11, tokenizer: tokenizer).pairs,
                       try task.generate(count: 30, seed: 11, tokenizer: tokenizer).pairs)
        XCTAssertNotEqual(try task.generate(count: 30, seed: 11, tokenizer: tokenizer).pairs,
                          try task.generate(count: 30, seed: 12, tokenizer: tokenizer).pairs)
    }
}

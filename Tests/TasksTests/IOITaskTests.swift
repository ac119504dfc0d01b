import Foundation
import Tasks
import Transformer
import XCTest

/// The IOI generator against its spec and HF's tokenizations of the spec's word lists.
final class IOITaskTests: XCTestCase {
    private func task() throws -> IOITask {
        try XCTUnwrap(try TaskFixtures.registry().task(named: "ioi") as? IOITask)
    }

    func testSpecMeetsTheIssueMinimums() throws {
        let task = try task()
        XCTAssertGreaterThanOrEqual(task.templates.count, 15)
        XCTAssertEqual(task.orders.map(\.name), ["ABBA", "BABA"])
        XCTAssertGreaterThanOrEqual(task.names.count, 100)
        XCTAssertGreaterThanOrEqual(task.places.count, 100)
        XCTAssertGreaterThanOrEqual(task.objects.count, 100)
        XCTAssertEqual(task.spec.metric, .logitDiff)
        XCTAssertEqual(task.corruption, "abc")
    }

    func testSameSeedSameOutputOtherSeedOtherOutput() throws {
        let task = try task(), tokenizer = try TaskFixtures.gpt2()
        let a = try task.generate(count: 50, seed: 7, tokenizer: tokenizer)
        let b = try task.generate(count: 50, seed: 7, tokenizer: tokenizer)
        let c = try task.generate(count: 50, seed: 8, tokenizer: tokenizer)
        XCTAssertEqual(a.pairs, b.pairs)
        XCTAssertEqual(a.tokenized, b.tokenized)
        XCTAssertNotEqual(a.pairs, c.pairs)
        // A longer run starts with the shorter one.
        XCTAssertEqual(Array(try task.generate(count: 80, seed: 7, tokenizer: tokenizer).pairs.prefix(50)), a.pairs)
    }

    func testPairsWithGPT2() throws {
        try checkPairs(tokenizer: try TaskFixtures.gpt2(), reference: try TaskFixtures.expected().gpt2)
    }

    func testPairsWithSmolLM2() throws {
        try checkPairs(tokenizer: try TaskFixtures.smolLM2(), reference: try TaskFixtures.expected().smol())
    }

    /// Counts, one-token filtering, equal lengths, ABBA/BABA balance, ABC corruption, answers.
    private func checkPairs(tokenizer: Tokenizer, reference: Expected.Vocabulary) throws {
        let task = try task()
        let count = 300
        let dataset = try task.generate(count: count, seed: 0, tokenizer: tokenizer)
        XCTAssertEqual(dataset.pairs.count, count)
        XCTAssertEqual(dataset.tokenized.count, count)
        XCTAssertEqual(dataset.metric, .logitDiff)
        let oneTokenNames = Set(reference.ioiNames)
        var orders: [String: Int] = [:]
        var usedNames: Set<String> = []
        for (pair, tokens) in zip(dataset.pairs, dataset.tokenized) {
            XCTAssertEqual(tokens.clean.count, tokens.corrupt.count, pair.clean)
            XCTAssertEqual(tokens.clean, tokenizer.encode(pair.clean))
            let io = String(try XCTUnwrap(pair.correct.first).dropFirst())
            let s = String(try XCTUnwrap(pair.incorrect.first).dropFirst())
            XCTAssertNotEqual(io, s)
            let ioToken = try XCTUnwrap(tokenizer.encode(" " + io).first)
            let sToken = try XCTUnwrap(tokenizer.encode(" " + s).first)
            XCTAssertEqual(tokens.correct, [ioToken])
            XCTAssertEqual(tokens.incorrect, [sToken])

            // The clean prompt names IO once and S twice, and only at the differing positions.
            let differing = tokens.clean.indices.filter { tokens.clean[$0] != tokens.corrupt[$0] }
            XCTAssertEqual(differing.count, 3, pair.clean + " / " + pair.corrupt)
            let cleanNames = differing.map { tokens.clean[$0] }
            XCTAssertEqual(cleanNames.filter { $0 == ioToken }.count, 1, pair.clean)
            XCTAssertEqual(cleanNames.filter { $0 == sToken }.count, 2, pair.clean)
            XCTAssertEqual(tokens.clean.filter { $0 == ioToken }.count, 1, pair.clean)
            XCTAssertEqual(cleanNames.last, sToken, "the last name is the repeated subject")
            orders[cleanNames[0] == ioToken ? "ABBA" : "BABA", default: 0] += 1

            // ABC: three fresh, distinct names.
            let corruptNames = differing.map { tokens.corrupt[$0] }
            XCTAssertEqual(Set(corruptNames).count, 3, pair.corrupt)
            XCTAssertTrue(Set(corruptNames).isDisjoint(with: [ioToken, sToken]), pair.corrupt)

            // Every name used is one token with its leading space according to HF.
            let names = (differing.map { tokenizer.decode([tokens.clean[$0]]) }
                + differing.map { tokenizer.decode([tokens.corrupt[$0]]) }).map { String($0.dropFirst()) }
            for name in names {
                XCTAssertTrue(oneTokenNames.contains(name), "\(name) is not one token in the reference")
                usedNames.insert(name)
            }
        }
        XCTAssertEqual(orders["ABBA"], count / 2)
        XCTAssertEqual(orders["BABA"], count / 2)
        XCTAssertGreaterThan(usedNames.count, 100, "names are drawn from the whole filtered list")
        let details = task.details(tokenizer: tokenizer).joined(separator: "\n")
        XCTAssertTrue(details.contains("\(reference.ioiNames.count) names, \(reference.ioiPlaces.count) places, "
            + "\(reference.ioiObjects.count) objects"), details)
    }

    func testNamesThatSplitAreNeverUsed() throws {
        // " Brandon" is two tokens in SmolLM2 (HF) but listed in the spec.
        let tokenizer = try TaskFixtures.smolLM2(), smol = try TaskFixtures.expected().smol()
        XCTAssertEqual(smol.ids[" Brandon"]?.count, 2)
        XCTAssertTrue(try task().names.contains("Brandon"))
        let dataset = try task().generate(count: 500, seed: 3, tokenizer: tokenizer)
        for pair in dataset.pairs {
            XCTAssertFalse(pair.clean.contains("Brandon") || pair.corrupt.contains("Brandon"), pair.clean)
        }
    }
}

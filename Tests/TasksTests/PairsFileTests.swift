import Foundation
import Tasks
import Transformer
import XCTest

/// Reading and writing pairs files in the three formats (design §9), checked against
/// `Tests/Fixtures/pairs` and the HF-computed values in its `expected.json`.
final class PairsFileTests: XCTestCase {
    // MARK: Good files

    func testReadsOurJSONLines() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let contents = try PairsFile.read(TaskFixtures.pairs("good.jsonl"), tokenizer: tokenizer)
        XCTAssertEqual(contents.pairs.count, expected.goodJsonlCount)
        XCTAssertEqual(contents.skipped.count, 0)
        XCTAssertEqual(contents.tokenized[0].correct, expected.gpt2.ids[" Mary"])
        XCTAssertEqual(contents.tokenized[0].incorrect, expected.gpt2.ids[" John"])
        XCTAssertEqual(contents.tokenized[0].clean.count, expected.gpt2.ioiCleanLength)
        // Line 3: two-digit year answers.
        XCTAssertEqual(contents.tokenized[1].correct, [53, 54, 99].map { expected.gpt2.twoDigitIds[$0][0] })
        XCTAssertEqual(contents.tokenized[1].incorrect, [1, 52].map { expected.gpt2.twoDigitIds[$0][0] })
        // Line 4: \u escapes and escaped quotes decoded; fields in another order.
        XCTAssertEqual(contents.pairs[2].clean, "Then, Anna and Tom went to the café. Tom gave a \"gift\" to")
        XCTAssertEqual(contents.pairs[2].correct, [" Anna"])
        XCTAssertEqual(contents.tokenized[2].correct, expected.gpt2.ids[" Anna"])
        // Line 5: fields the format does not define are ignored, each named once.
        XCTAssertEqual(contents.pairs[3], contents.pairs[0])
        XCTAssertEqual(contents.ignoredFields, expected.goodJsonlIgnoredFields)
    }

    func testReadsAutoCircuitJSON() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let contents = try PairsFile.read(TaskFixtures.pairs("good-auto-circuit.json"), tokenizer: tokenizer)
        XCTAssertEqual(contents.pairs.count, expected.goodAutoCircuitCount)
        XCTAssertEqual(contents.pairs[1].correct, [" Scott"])
        XCTAssertEqual(contents.pairs[1].incorrect, [" Jeremy"])
        XCTAssertEqual(contents.tokenized[0].correct, expected.gpt2.ids[" Mary"])
        XCTAssertEqual(contents.tokenized[2].correct, [53, 60, 99].map { expected.gpt2.twoDigitIds[$0][0] })
        XCTAssertEqual(contents.tokenized[2].incorrect, [0, 52].map { expected.gpt2.twoDigitIds[$0][0] })
    }

    func testReadsEAPIGCSVWithTokenIDs() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let contents = try PairsFile.read(TaskFixtures.pairs("good-eap-ig.csv"), tokenizer: tokenizer)
        XCTAssertEqual(contents.pairs.count, expected.goodEapIg.count)
        for (i, row) in expected.goodEapIg.enumerated() {
            // Quoted fields with commas, doubled quotes and a line break come back intact.
            XCTAssertEqual(contents.pairs[i].clean, row.clean)
            XCTAssertEqual(contents.pairs[i].corrupt, row.corrupt)
            XCTAssertEqual(contents.tokenized[i].correct, [row.correctId])
            XCTAssertEqual(contents.tokenized[i].incorrect, [row.incorrectId])
            XCTAssertEqual(contents.pairs[i].correct, [tokenizer.decode([row.correctId])])
        }
    }

    func testGreaterThanEAPIGCSVUsesTwoDigitYearsWithGPT2() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let contents = try PairsFile.read(TaskFixtures.pairs("greater-than-eap-ig.csv"), tokenizer: tokenizer, skipInvalid: true)
        let usable = expected.greaterThanEapIgYears.filter { (0...98).contains($0) }
        XCTAssertEqual(contents.pairs.count, usable.count)
        for (pair, year) in zip(contents.tokenized, usable) {
            XCTAssertEqual(pair.correct, (year + 1...99).map { expected.gpt2.twoDigitIds[$0][0] }, "year \(year)")
            XCTAssertEqual(pair.incorrect, (0...year).map { expected.gpt2.twoDigitIds[$0][0] }, "year \(year)")
        }
        XCTAssertEqual(contents.skipped.map(\.line), [4, 5])
        XCTAssertTrue(contents.skipped[0].reason.contains("start year 99 leaves no correct"), contents.skipped[0].reason)
        XCTAssertTrue(contents.skipped[1].reason.contains("correct_idx 130 is not a start year"), contents.skipped[1].reason)
    }

    func testGreaterThanEAPIGCSVUsesNextDigitWithSmolLM2() throws {
        let tokenizer = try TaskFixtures.smolLM2(), smol = try TaskFixtures.expected().smol()
        let years = try TaskFixtures.expected().greaterThanEapIgYears
        let contents = try PairsFile.read(TaskFixtures.pairs("greater-than-eap-ig.csv"), tokenizer: tokenizer, skipInvalid: true)
        let usable = years.filter { (10...89).contains($0) }
        XCTAssertEqual(contents.pairs.count, usable.count)
        for (pair, year) in zip(contents.tokenized, usable) {
            let tens = year / 10
            XCTAssertEqual(pair.correct, (tens + 1...9).map { smol.digitIds[$0][0] }, "year \(year)")
            XCTAssertEqual(pair.incorrect, (0..<tens).map { smol.digitIds[$0][0] }, "year \(year)")
        }
    }

    // MARK: Malformed files

    func testEachMalformedJSONLineFailsAloneWithItsLineAndReason() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let lines = try String(contentsOf: TaskFixtures.pairs("bad.jsonl"), encoding: .utf8).split(separator: "\n").map(String.init)
        let folder = try TaskFixtures.temporaryFolder(self)
        for entry in expected.badJsonl {
            // A valid line, the bad one, then a valid line: the error must name line 2.
            let url = folder.appendingPathComponent("case.jsonl")
            try (lines[0] + "\n" + lines[entry.line - 1] + "\n" + lines[0] + "\n").write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer), entry.kind) { error in
                guard let error = error as? PairsFileError else { return XCTFail("\(entry.kind): \(error)") }
                XCTAssertEqual(error.line, 2, entry.kind)
                XCTAssertTrue(error.reason.contains(entry.reasonFragment), "\(entry.kind): \(error.reason)")
            }
        }
    }

    func testTwoTokenAnswerMessageNamesThePieces() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let url = TaskFixtures.pairs("bad.jsonl")
        let skipped = try PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true).skipped
        let pieces = try XCTUnwrap(expected.gpt2.pieces?[" Zachary"]).map(\.debugDescription).joined(separator: ", ")
        XCTAssertEqual(skipped[1].description,
                       "\(url.relativePath):4: answer \" Zachary\" is 2 tokens (\(pieces)); answers must be one token")
        XCTAssertEqual(skipped[2].reason, "clean prompt is \(expected.gpt2.ioiCleanLength!) tokens but corrupt is "
                           + "\(expected.gpt2.lengthMismatchCorruptLength!); they must have the same token count")
    }

    func testFirstInvalidLineStopsTheRead() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        XCTAssertThrowsError(try PairsFile.read(TaskFixtures.pairs("bad.jsonl"), tokenizer: tokenizer)) { error in
            XCTAssertEqual((error as? PairsFileError)?.line, expected.badJsonl[0].line)
        }
    }

    func testSkipInvalidReportsEverySkippedLine() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let contents = try PairsFile.read(TaskFixtures.pairs("bad.jsonl"), tokenizer: tokenizer, skipInvalid: true)
        XCTAssertEqual(contents.pairs.count, expected.badJsonlValidCount)
        XCTAssertEqual(contents.skipped.count, expected.badJsonl.count)
        XCTAssertEqual(contents.skipped.map(\.line), expected.badJsonl.map(\.line))
        for (error, entry) in zip(contents.skipped, expected.badJsonl) {
            XCTAssertTrue(error.reason.contains(entry.reasonFragment), "\(entry.kind): \(error.reason)")
        }
        XCTAssertEqual(contents.ignoredFields, [], "the fields of skipped entries are not reported as ignored")
    }

    func testUnknownFieldsAreIgnoredAndListedOncePerFile() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let folder = try TaskFixtures.temporaryFolder(self)
        let pair = #""clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "When Alice and Bob went to the store, Carl gave a drink to""#
        let jsonl = folder.appendingPathComponent("pairs.jsonl")
        try [#"{"template": 3, "#, #"{"id": "b", "template": 0, "#, #"{"#].map { $0 + pair + #", "correct": [" Mary"], "incorrect": [" John"]}"# }
            .joined(separator: "\n").write(to: jsonl, atomically: true, encoding: .utf8)
        let lines = try PairsFile.read(jsonl, tokenizer: tokenizer)
        XCTAssertEqual(lines.pairs.count, 3)
        XCTAssertEqual(lines.ignoredFields, ["template", "id"])
        let autoCircuit = folder.appendingPathComponent("pairs.json")
        try (#"{"prompts": [{"#  + pair + #", "answers": [" Mary"], "wrong_answers": [" John"], "seq_label": 1}]}"#)
            .write(to: autoCircuit, atomically: true, encoding: .utf8)
        XCTAssertEqual(try PairsFile.read(autoCircuit, tokenizer: tokenizer).ignoredFields, ["seq_label"])
    }

    func testAMissingFieldNamesTheUnknownFieldItWasMostLikelyMisspelledAs() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let url = try TaskFixtures.temporaryFolder(self).appendingPathComponent("pairs.jsonl")
        let prompts = #""clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "When Alice and Bob went to the store, Carl gave a drink to""#
        let cases = [
            (#""corect": [" Mary"], "incorrect": [" John"], "template": 1"#, #"missing field "correct" (did you mean "corect"?)"#),
            (#""correct": [" Mary"], "incorrect_ids": [1757]"#, #"missing field "incorrect""#),
            (#""correct": [" Mary"], "Incorrects": [" John"], "incorrect_": [" John"]"#, #"missing field "incorrect" (did you mean "incorrect_"?)"#),
        ]
        for (fields, reason) in cases {
            try ("\n{" + prompts + ", " + fields + "}\n").write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer), fields) { error in
                XCTAssertEqual("\(error)", "\(url.relativePath):2: \(reason)", fields)
            }
        }
    }

    func testAutoCircuitMalformedPromptsNameTheLineOfTheBadField() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let url = TaskFixtures.pairs("bad-auto-circuit.json")
        let contents = try PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true)
        XCTAssertEqual(contents.pairs.count, 2)
        XCTAssertEqual(contents.skipped.map(\.line), expected.badAutoCircuit.map(\.line))
        for (error, entry) in zip(contents.skipped, expected.badAutoCircuit) {
            XCTAssertTrue(error.reason.contains(entry.reasonFragment), "\(entry.kind): \(error.reason)")
        }
        XCTAssertTrue(contents.skipped[2].reason.hasPrefix("wrong_answers is an empty list"), contents.skipped[2].reason)
        XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer)) { error in
            XCTAssertEqual((error as? PairsFileError)?.line, expected.badAutoCircuit[0].line)
        }
    }

    func testBrokenAutoCircuitJSONIsFatalEvenWhenSkipping() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        XCTAssertThrowsError(try PairsFile.read(TaskFixtures.pairs("broken-auto-circuit.json"), tokenizer: tokenizer,
                                                skipInvalid: true)) { error in
            guard let error = error as? PairsFileError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.line, expected.brokenAutoCircuitLine)
            XCTAssertTrue(error.reason.hasPrefix("bad JSON"), error.reason)
        }
    }

    func testEAPIGMalformedRowsNameTheirFirstLine() throws {
        let tokenizer = try TaskFixtures.gpt2(), expected = try TaskFixtures.expected()
        let url = TaskFixtures.pairs("bad-eap-ig.csv")
        let contents = try PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true)
        XCTAssertEqual(contents.pairs.count, 2)
        XCTAssertEqual(contents.skipped.map(\.line), expected.badEapIg.map(\.line))
        for (error, entry) in zip(contents.skipped, expected.badEapIg) {
            XCTAssertTrue(error.reason.contains(entry.reasonFragment), "\(entry.kind): \(error.reason)")
        }
        XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer)) { error in
            XCTAssertEqual((error as? PairsFileError)?.line, expected.badEapIg[0].line)
        }
    }

    func testStructuralProblemsAreFatal() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let folder = try TaskFixtures.temporaryFolder(self)
        let cases: [(name: String, text: String, line: Int?, reason: String)] = [
            ("unterminated.csv", "clean,corrupted,correct_idx,incorrect_idx\n\"a,b,1,2\nc,d,1,2\n", 2, "unterminated quoted field"),
            ("header.csv", "clean,corrupt,answer\na,b,1\n", 1, "header lacks corrupted, correct_idx"),
            ("list.json", "[{\"clean\": \"a\"}]", 1, "expected an object with a \"prompts\" list"),
            ("noprompts.json", "{\"data\": []}", nil, "no \"prompts\" field"),
            ("empty.jsonl", "\n\n", nil, "no pairs in the file"),
            ("pairs.txt", "{}", nil, "cannot tell the format"),
        ]
        for item in cases {
            let url = folder.appendingPathComponent(item.name)
            try item.text.write(to: url, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true), item.name) { error in
                guard let error = error as? PairsFileError else { return XCTFail("\(item.name): \(error)") }
                XCTAssertEqual(error.line, item.line, item.name)
                XCTAssertTrue(error.reason.contains(item.reason), "\(item.name): \(error.reason)")
            }
        }
    }

    func testAllInvalidWithSkipIsAnError() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let url = try TaskFixtures.temporaryFolder(self).appendingPathComponent("bad.jsonl")
        try "{\"clean\": 1}\nnot json\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true)) { error in
            XCTAssertTrue("\(error)".contains("all 2 entries are invalid"), "\(error)")
        }
    }

    func testJSONSyntaxErrorsNameTheColumn() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let url = try TaskFixtures.temporaryFolder(self).appendingPathComponent("syntax.jsonl")
        let lines = [
            #"{"clean": "a", "corrupt": "b", "correct": [" a"], "incorrect": [" b"]} extra"#,
            #"{"clean": "a\q"}"#,
            #"{"clean": "a"#,
            #"{"clean": tru}"#,
            String(repeating: "[", count: 1000),
        ]
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        let skipped = try? PairsFile.read(url, tokenizer: tokenizer, skipInvalid: true)
        XCTAssertNil(skipped, "every line is invalid")
        for (i, line) in lines.enumerated() {
            let single = url.deletingLastPathComponent().appendingPathComponent("line\(i).jsonl")
            try line.write(to: single, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PairsFile.read(single, tokenizer: tokenizer)) { error in
                XCTAssertTrue("\(error)".contains(":1: bad JSON: "), "\(error)")
            }
        }
        let extra = url.deletingLastPathComponent().appendingPathComponent("line0.jsonl")
        XCTAssertThrowsError(try PairsFile.read(extra, tokenizer: tokenizer)) { error in
            XCTAssertTrue("\(error)".hasSuffix("unexpected 'e' after the JSON value (column 72)"), "\(error)")
        }
    }

    func testByteOrderMarkAndCRLFLineEndsAreAccepted() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let folder = try TaskFixtures.temporaryFolder(self)
        for name in ["good.jsonl", "good-eap-ig.csv", "good-auto-circuit.json"] {
            let original = try PairsFile.read(TaskFixtures.pairs(name), tokenizer: tokenizer)
            let text = try String(contentsOf: TaskFixtures.pairs(name), encoding: .utf8)
            let url = folder.appendingPathComponent(name)
            try Data(([0xEF, 0xBB, 0xBF] as [UInt8]) + Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)).write(to: url)
            let converted = try PairsFile.read(url, tokenizer: tokenizer)
            XCTAssertEqual(converted.pairs.count, original.pairs.count, name)
            if name != "good-eap-ig.csv" {  // its quoted line break becomes \r\n inside the prompt
                XCTAssertEqual(converted.pairs, original.pairs, name)
            }
        }
    }

    // MARK: Writing

    func testWrittenFileReadsBackAndParsesWithFoundation() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let original = try PairsFile.read(TaskFixtures.pairs("good.jsonl"), tokenizer: tokenizer)
        let url = try TaskFixtures.temporaryFolder(self).appendingPathComponent("pairs.jsonl")
        try PairsFile.write(original.pairs, to: url)
        let reread = try PairsFile.read(url, tokenizer: tokenizer)
        XCTAssertEqual(reread.pairs, original.pairs)
        XCTAssertEqual(reread.tokenized, original.tokenized)
        // An independent parser agrees on every field.
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, original.pairs.count)
        for (line, pair) in zip(lines, original.pairs) {
            let decoded = try JSONDecoder().decode(PromptPair.self, from: Data(line.utf8))
            XCTAssertEqual(decoded, pair)
            XCTAssertTrue(line.hasPrefix("{\"clean\": "), String(line))
        }
    }

    func testControlCharactersAndUnicodeSurviveARoundTrip() throws {
        let pair = PromptPair(clean: "tab\there \"quoted\" back\\slash\nnew line \u{1} é 😀 /", corrupt: "x",
                              correct: ["\u{7F}"], incorrect: ["\r"])
        let text = PairsFile.jsonLines([pair])
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, "one line per pair")
        let decoded = try JSONDecoder().decode(PromptPair.self, from: Data(text.utf8))
        XCTAssertEqual(decoded, pair)
    }

    func testFormatIsInferredFromTheExtension() throws {
        XCTAssertEqual(try PairsFormat(inferringFrom: URL(fileURLWithPath: "a/pairs.jsonl")), .jsonl)
        XCTAssertEqual(try PairsFormat(inferringFrom: URL(fileURLWithPath: "ioi.JSON")), .autoCircuit)
        XCTAssertEqual(try PairsFormat(inferringFrom: URL(fileURLWithPath: "gpt2.csv")), .eapIG)
        XCTAssertThrowsError(try PairsFormat(inferringFrom: URL(fileURLWithPath: "pairs.tsv")))
    }

    func testAnExplicitFormatOverridesTheExtension() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let url = try TaskFixtures.temporaryFolder(self).appendingPathComponent("pairs.txt")
        try Data(contentsOf: TaskFixtures.pairs("good.jsonl")).write(to: url)
        XCTAssertEqual(try PairsFile.read(url, format: .jsonl, tokenizer: tokenizer).pairs.count,
                       try TaskFixtures.expected().goodJsonlCount)
    }

    /// Prompts longer than the model's context are refused with their line (kept with a larger context),
    /// in each format; a CSV header ending in `\r\r\n` is still a header with every column.
    func testPromptsLongerThanTheContextNameTheirLineAndCRsEndLines() throws {
        let tokenizer = try TaskFixtures.gpt2()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pairs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = [
            "p.jsonl": #"{"clean": "When Mary and John went", "corrupt": "When Alice and Bob went", "correct": [" Mary"], "incorrect": [" John"]}"# + "\n",
            "p.csv": ",clean,corrupted,correct_idx,incorrect_idx\r\r\n0,When Mary and John went,When Alice and Bob went,5335,1757\r\r\n",
        ]
        for (name, text) in files {
            let url = directory.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            let count = try PairsFile.read(url, tokenizer: tokenizer, contextLength: 5).tokenized.count
            XCTAssertEqual(count, 1, name)
            XCTAssertThrowsError(try PairsFile.read(url, tokenizer: tokenizer, contextLength: 4), name) { error in
                XCTAssertTrue("\(error)".contains(name == "p.jsonl" ? "p.jsonl:1:" : "p.csv:2:"), "\(error)")
                XCTAssertTrue("\(error)".contains("the prompts are 5 tokens, longer than the model's context of 4"), "\(error)")
            }
        }
    }
}

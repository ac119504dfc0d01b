import Foundation
import TestSupport
import Transformer
import XCTest

/// Checks the tokenizer against HF `tokenizers` on the strings of `Tests/Fixtures/tokenizer`
/// (expected values written by `generate.py` from HF, never from this code).
final class TokenizerTests: XCTestCase {
    /// HF's results for one vocabulary (`<vocabulary>.json`).
    struct Expectations: Decodable {
        struct Decoded: Decodable {
            let ids: [Int]
            let text: String
        }
        struct TokenText: Decodable {
            let id: Int
            let text: String
        }
        /// HF's encoding of each test string.
        let ids: [[Int]]
        /// HF's decoding of slices of those encodings.
        let decodes: [Decoded]
        /// HF's decoding of single tokens.
        let tokens: [TokenText]
    }

    static let ioi = "When Mary and John went to the store, John gave a drink to"
    static let ioiIDs = [2427, 5099, 284, 2322, 3514, 288, 260, 4249, 28, 2322, 4502, 253, 5968, 288]

    static func fixture(_ name: String) -> URL { Fixtures.url("tokenizer").appendingPathComponent(name) }
    static func tiny(_ name: String) -> URL { Fixtures.url("tiny-tokenizer").appendingPathComponent(name) }

    func testGPT2VocabularyMatchesHF() throws {
        let tokenizer = try Fixtures.gpt2Tokenizer()
        XCTAssertEqual(tokenizer.vocabularySize, 50257)
        XCTAssertEqual(tokenizer.preTokenizer, .gpt2)
        XCTAssertEqual(tokenizer.encode(" Mary"), [5335])
        XCTAssertEqual(tokenizer.encode(" John"), [1757])
        XCTAssertEqual(tokenizer.encode(" 17"), [1596])
        XCTAssertEqual(tokenizer.encode("32"), [2624])
        XCTAssertEqual(tokenizer.id(forToken: "ĠMary"), 5335)
        XCTAssertEqual(tokenizer.tokenText(5335), " Mary")
        XCTAssertEqual(tokenizer.encode("<|endoftext|>"), [50256])
        try check(tokenizer, against: "gpt2")
    }

    func testSmolLM2VocabularyFromGGUFMatchesHF() throws {
        let tokenizer = try Tokenizer(gguf: try GGUFFile(contentsOf: try Fixtures.smolLM2()))
        XCTAssertEqual(tokenizer.vocabularySize, 49152)
        XCTAssertEqual(tokenizer.preTokenizer, .smollm)
        XCTAssertEqual(tokenizer.encode(Self.ioi), Self.ioiIDs)
        XCTAssertEqual(tokenizer.id(forToken: "ĠMary"), 5099)
        XCTAssertEqual(tokenizer.tokenText(5099), " Mary")
        XCTAssertEqual(tokenizer.tokenText(2322), " John")
        try check(tokenizer, against: "smollm2")
    }

    func testTokenizerJSONMatchesHF() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer.json"))
        XCTAssertEqual(tokenizer.vocabularySize, 512)
        XCTAssertEqual(tokenizer.preTokenizer, .gpt2)
        XCTAssertEqual(tokenizer.encode("<|endoftext|>"), [0])
        try check(tokenizer, against: "tiny")
    }

    func testTokenizerJSONWithDigitsPreTokenizerMatchesHF() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer-digits.json"))
        XCTAssertEqual(tokenizer.preTokenizer, .smollm)
        try check(tokenizer, against: "tiny-digits")
    }

    func testVocabAndMergesFilesMatchHF() throws {
        let tokenizer = try Tokenizer(vocabJSON: Self.tiny("vocab.json"), mergesTXT: Self.tiny("merges.txt"))
        XCTAssertEqual(tokenizer.vocabularySize, 512)
        try check(tokenizer, against: "tiny")
    }

    func testMergesFileWithCRLFLineEndsMatchesHF() throws {
        let crlf = try temporaryFolder().appendingPathComponent("merges.txt")
        let merges = try String(contentsOf: Self.tiny("merges.txt"), encoding: .utf8)
        try merges.replacingOccurrences(of: "\n", with: "\r\n").write(to: crlf, atomically: true, encoding: .utf8)
        try check(try Tokenizer(vocabJSON: Self.tiny("vocab.json"), mergesTXT: crlf), against: "tiny")
    }

    func testArrayInitializerMatchesHF() throws {
        let tokens = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer.json")).tokens
        let merges = try String(contentsOf: Self.tiny("merges.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#version") }
        let tokenizer = try Tokenizer(tokens: tokens, merges: merges, preTokenizer: .smollm, specialTokens: ["<|endoftext|>"])
        try check(tokenizer, against: "tiny-digits")
    }

    func testGGUFVocabularyMatchesHF() throws {
        // The tiny vocabulary written as GGUF metadata, so the GGUF path is checked without the model.
        let source = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer.json"))
        let url = try writeGGUF(tokens: source.tokens, merges: try tinyMerges(), pre: "smollm")
        let tokenizer = try Tokenizer(gguf: try GGUFFile(contentsOf: url))
        XCTAssertEqual(tokenizer.preTokenizer, .smollm)
        XCTAssertEqual(tokenizer.encode("<|endoftext|>"), [0])
        try check(tokenizer, against: "tiny-digits")
    }

    func testSpecialTokensAreMatchedWholeAndLongestFirst() throws {
        let base = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer.json"))
        let tokenizer = try Tokenizer(tokens: base.tokens, merges: try tinyMerges(), preTokenizer: .gpt2,
                                      specialTokens: ["<|endoftext|>", "<", "!"])
        let lt = try XCTUnwrap(base.id(forToken: "<")), bang = try XCTUnwrap(base.id(forToken: "!"))
        XCTAssertEqual(tokenizer.encode("<|endoftext|>"), [0])
        XCTAssertEqual(tokenizer.encode("<!<|endoftext|>"), [lt, bang, 0])
        XCTAssertEqual(tokenizer.encode("a!b"), [base.encode("a")[0], bang, base.encode("b")[0]])
    }

    func testBadFilesThrowModelFileErrorNamingTheFile() throws {
        let folder = try temporaryFolder()
        let tokenizerJSON = try Data(contentsOf: Self.tiny("tokenizer.json"))
        let vocabJSON = try Data(contentsOf: Self.tiny("vocab.json"))
        let merges = try String(contentsOf: Self.tiny("merges.txt"), encoding: .utf8)

        let truncated = folder.appendingPathComponent("truncated.json")
        try tokenizerJSON.prefix(tokenizerJSON.count / 2).write(to: truncated)
        assertModelFileError(try Tokenizer(tokenizerJSON: truncated), path: truncated, mentions: "invalid JSON")

        let truncatedVocab = folder.appendingPathComponent("vocab.json")
        try vocabJSON.prefix(vocabJSON.count - 10).write(to: truncatedVocab)
        assertModelFileError(try Tokenizer(vocabJSON: truncatedVocab, mergesTXT: Self.tiny("merges.txt")),
                             path: truncatedVocab, mentions: "invalid JSON")

        let unknownMerge = folder.appendingPathComponent("unknown-merge.txt")
        try (merges + "Ġ Ġzzzqq\n").write(to: unknownMerge, atomically: true, encoding: .utf8)
        let lastLine = merges.split(separator: "\n").count + 1
        assertModelFileError(try Tokenizer(vocabJSON: Self.tiny("vocab.json"), mergesTXT: unknownMerge),
                             path: unknownMerge, mentions: "line \(lastLine) ('Ġ Ġzzzqq') names unknown token 'Ġzzzqq'")

        let badLine = folder.appendingPathComponent("bad-line.txt")
        try "#version: 0.2\nĠ t\nhe\n".write(to: badLine, atomically: true, encoding: .utf8)
        assertModelFileError(try Tokenizer(vocabJSON: Self.tiny("vocab.json"), mergesTXT: badLine),
                             path: badLine, mentions: "line 3 'he' is not two tokens")

        let unknownJSONMerge = folder.appendingPathComponent("unknown-merge.json")
        try replacing(in: tokenizerJSON, "\"h\",\n        \"e\"", with: "\"h\",\n        \"zzzqq\"").write(to: unknownJSONMerge)
        assertModelFileError(try Tokenizer(tokenizerJSON: unknownJSONMerge), path: unknownJSONMerge,
                             mentions: "names unknown token 'zzzqq'")

        let whitespace = folder.appendingPathComponent("whitespace.json")
        try replacing(in: tokenizerJSON, "\"type\": \"ByteLevel\",\n    \"add_prefix_space\": false",
                      with: "\"type\": \"Whitespace\",\n    \"add_prefix_space\": false").write(to: whitespace)
        assertModelFileError(try Tokenizer(tokenizerJSON: whitespace), path: whitespace, mentions: "pre_tokenizer Whitespace")

        let qwen = try writeGGUF(tokens: try Tokenizer(tokenizerJSON: Self.tiny("tokenizer.json")).tokens,
                                 merges: try tinyMerges(), pre: "qwen2")
        assertModelFileError(try Tokenizer(gguf: try GGUFFile(contentsOf: qwen)), path: qwen,
                             mentions: "tokenizer.ggml.pre = 'qwen2'; supported: gpt-2, gpt2, smollm")

        let ggufUnknownMerge = try writeGGUF(tokens: ["a", "b", "ab"], merges: ["a b", "ab c"], pre: "gpt2")
        assertModelFileError(try Tokenizer(gguf: try GGUFFile(contentsOf: ggufUnknownMerge)), path: ggufUnknownMerge,
                             mentions: "tokenizer.ggml.merges[1] ('ab c') names unknown token 'c'")
    }

    func testRoundTripOfUnseenText() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer-digits.json"))
        let alphabet = Array("ab Z9'\n\t.é中😀\u{301}\u{a0}<|endoftext|>".unicodeScalars)
        var state: UInt64 = 12345
        func next(_ bound: Int) -> Int {  // a fixed linear congruential sequence, so failures reproduce
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) % bound
        }
        for _ in 0..<2000 {
            var text = String.UnicodeScalarView()
            for _ in 0..<next(30) { text.append(alphabet[next(alphabet.count)]) }
            let string = String(text)
            let decoded = tokenizer.decode(tokenizer.encode(string))
            XCTAssert(sameScalars(decoded, string), "\(string.debugDescription) came back as \(decoded.debugDescription)")
        }
    }

    func testEncodingIsFastAndThreadSafe() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer-digits.json"))
        let names = ["Mary", "John", "Alice", "Bob", "Sarah", "Michael", "Ana", "Zoë", "Xi", "Kim"]
        let prompts = (0..<10_000).map { i in
            "When \(names[i % 10]) and \(names[(i / 10) % 10]) went to the store in \(1700 + i % 300), \(names[i % 10]) gave a drink to"
        }
        let start = Date()
        let serial = prompts.map(tokenizer.encode)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 2, "encoding 10k prompts took \(seconds) s")

        let fresh = try Tokenizer(tokenizerJSON: Self.tiny("tokenizer-digits.json"))
        let results = ResultBox(count: prompts.count)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in stride(from: worker, to: prompts.count, by: 8) { results.set(i, fresh.encode(prompts[i])) }
        }
        XCTAssertEqual(results.values, serial)
    }

    // MARK: - Helpers

    /// Compares encode, decode and tokenText with HF's results for `vocabulary`.
    private func check(_ tokenizer: Tokenizer, against vocabulary: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let strings = try JSONDecoder().decode([String].self, from: Data(contentsOf: Self.fixture("strings.json")))
        let expected = try JSONDecoder().decode(Expectations.self, from: Data(contentsOf: Self.fixture("\(vocabulary).json")))
        XCTAssertGreaterThanOrEqual(strings.count, 500, file: file, line: line)
        XCTAssertEqual(strings.count, expected.ids.count, file: file, line: line)
        var failures: [String] = []
        for (text, ids) in zip(strings, expected.ids) {
            let actual = tokenizer.encode(text)
            if actual != ids { failures.append("encode(\(text.debugDescription)) = \(actual), HF \(ids)") }
            let decoded = tokenizer.decode(ids)
            if !sameScalars(decoded, text) { failures.append("decode(\(ids)) = \(decoded.debugDescription), expected \(text.debugDescription)") }
        }
        for decode in expected.decodes {
            let actual = tokenizer.decode(decode.ids)
            if !sameScalars(actual, decode.text) {
                failures.append("decode(\(decode.ids)) = \(actual.debugDescription), HF \(decode.text.debugDescription)")
            }
        }
        for token in expected.tokens {
            let actual = tokenizer.tokenText(token.id)
            if !sameScalars(actual, token.text) {
                failures.append("tokenText(\(token.id)) = \(actual.debugDescription), HF \(token.text.debugDescription)")
            }
        }
        XCTAssertGreaterThan(expected.decodes.count, 100, file: file, line: line)
        XCTAssertGreaterThan(expected.tokens.count, 300, file: file, line: line)
        XCTAssert(failures.isEmpty, "\(vocabulary): \(failures.count) mismatches with HF, first: \n" + failures.prefix(10).joined(separator: "\n"),
                  file: file, line: line)
    }

    /// Exact equality (String's `==` identifies canonically equivalent texts).
    private func sameScalars(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }

    private func assertModelFileError(_ expression: @autoclosure () throws -> Tokenizer, path: URL, mentions: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            guard let error = error as? ModelFileError else {
                return XCTFail("expected ModelFileError, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(error.path, path.path, file: file, line: line)
            XCTAssert(error.problem.contains(mentions), "'\(error.problem)' does not mention '\(mentions)'", file: file, line: line)
        }
    }

    private func tinyMerges() throws -> [String] {
        try String(contentsOf: Self.tiny("merges.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#version") }
    }

    private func replacing(in data: Data, _ target: String, with replacement: String) throws -> Data {
        let text = try XCTUnwrap(String(data: data, encoding: .utf8))
        XCTAssert(text.contains(target), "fixture lacks \(target.debugDescription)")
        return Data(text.replacingOccurrences(of: target, with: replacement).utf8)
    }

    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("TokenizerTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Writes a GGUF v3 file with no tensors and a gpt2-model tokenizer; `<|endoftext|>` is a control token.
    private func writeGGUF(tokens: [String], merges: [String], pre: String) throws -> URL {
        let bytes = ggufBytes(metadata: [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.merges", .array(merges.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(tokens.map { .int($0 == "<|endoftext|>" ? 3 : 1) })),
        ])
        let url = try temporaryFolder().appendingPathComponent("\(pre).gguf")
        try bytes.write(to: url)
        return url
    }
}

/// Per-index results written from several threads (each index by one thread only).
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [[Int]]

    init(count: Int) { values = Array(repeating: [], count: count) }

    func set(_ index: Int, _ value: [Int]) { lock.withLock { values[index] = value } }
}

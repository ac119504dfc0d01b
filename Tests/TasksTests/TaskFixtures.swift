import Foundation
import Tasks
import TestSupport
import Transformer
import XCTest

/// Tokenizers, the task registry and the expected values the task tests share.
enum TaskFixtures {
    private static let gpt2Result = Result<Tokenizer, any Error> { try Fixtures.gpt2Tokenizer() }
    private static let smolResult = Result<Tokenizer, any Error> {
        try Tokenizer(gguf: try GGUFFile(contentsOf: try Fixtures.smolLM2()))
    }
    private static let expectedResult = Result<Expected, any Error> {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Expected.self, from: Data(contentsOf: pairs("expected.json")))
    }

    /// GPT-2's tokenizer (`Fixtures.gpt2Tokenizer`; skips when absent).
    static func gpt2() throws -> Tokenizer { try gpt2Result.get() }

    /// SmolLM2's tokenizer from the cached GGUF (skips when absent).
    static func smolLM2() throws -> Tokenizer { try smolResult.get() }

    /// Values computed by `Tests/Fixtures/pairs/make_fixtures.py` with HF tokenizers.
    static func expected() throws -> Expected { try expectedResult.get() }

    /// `Tests/Fixtures/pairs/<name>`.
    static func pairs(_ name: String) -> URL { Fixtures.url("pairs").appendingPathComponent(name) }

    /// The registry of this checkout's `Tasks/` folder.
    static func registry() throws -> TaskRegistry { TaskRegistry(directory: Fixtures.repositoryRoot.appendingPathComponent("Tasks")) }

    /// A fresh temporary folder, removed when the test ends.
    static func temporaryFolder(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuitkit-tasks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// `Tests/Fixtures/pairs/expected.json`.
struct Expected: Decodable {
    /// A malformed entry: its line and what is wrong with it.
    struct BadEntry: Decodable {
        let line: Int
        let kind: String
    }

    /// A row of `good-eap-ig.csv`.
    struct EAPRow: Decodable {
        let clean: String
        let corrupt: String
        let correctId: Int
        let incorrectId: Int
    }

    /// Reference tokenizations of one vocabulary.
    struct Vocabulary: Decodable {
        let ids: [String: [Int]]
        let pieces: [String: [String]]?
        let ioiCleanLength: Int?
        let lengthMismatchCorruptLength: Int?
        let twoDigitIds: [[Int]]
        let digitIds: [[Int]]
        let ioiNames: [String]
        let ioiPlaces: [String]
        let ioiObjects: [String]
        let greaterThanNouns: [String]
        let inductionWords: [String]
    }

    let goodJsonlCount: Int
    let goodJsonlIgnoredFields: [String]
    let badJsonl: [BadEntry]
    let badJsonlValidCount: Int
    let goodAutoCircuitCount: Int
    let badAutoCircuit: [BadEntry]
    let brokenAutoCircuitLine: Int
    let goodEapIg: [EAPRow]
    let badEapIg: [BadEntry]
    let greaterThanEapIgYears: [Int]
    let gpt2: Vocabulary
    let smollm2: Vocabulary?

    /// SmolLM2's reference values, or a skip when they were generated without the model.
    func smol() throws -> Vocabulary {
        guard let smollm2 else { throw XCTSkip("expected.json has no SmolLM2 values (model absent when generated)") }
        return smollm2
    }
}

extension Expected.BadEntry {
    /// A phrase the error reason must contain for this kind of problem.
    var reasonFragment: String {
        switch kind {
        case "bad JSON": return "bad JSON"
        case "two-token answer": return "is 2 tokens"
        case "length mismatch": return "must have the same token count"
        case "empty answer list": return "is an empty list"
        case "field type": return "must be a list of strings, found a string"
        case "misspelled field": return "missing field \"corrupt\" (did you mean \"corrupted\"?)"
        case "missing field": return "missing field \"incorrect\""
        case "list element type": return "must be a list of strings, but holds a number"
        case "not an object": return "expected a pair object, found a list"
        case "answer in both": return "is both correct and incorrect"
        case "not an integer": return "is not an integer"
        case "out of range": return "outside the vocabulary"
        case "field count": return "row has 5 fields but the header has 6"
        default: return "unknown kind \(kind)"
        }
    }
}

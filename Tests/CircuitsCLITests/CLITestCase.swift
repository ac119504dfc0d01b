import Foundation
import TestSupport
import XCTest

/// What the CLI tests share: the built `circuits` executable, running it, and temporary folders.
class CLITestCase: XCTestCase {
    /// Output of one invocation.
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The `circuits` executable built beside this test bundle (its folder on Linux, its parent on macOS).
    func executable() throws -> URL {
        let folders = [Bundle.main.executableURL?.deletingLastPathComponent(), Bundle.main.bundleURL,
                       Bundle.main.bundleURL.deletingLastPathComponent()].compactMap { $0 }
        if let found = folders.map({ $0.appendingPathComponent("circuits") }).first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) {
            return found
        }
        let message = "circuits is not built beside the tests (looked in \(folders.map(\.path))); run `swift build -c release` first"
        if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
        throw XCTSkip(message)
    }

    /// Runs `circuits` with `arguments` (in `directory`, or the test's own), its output captured in
    /// files (no pipe can fill up and block it).
    func circuits(_ arguments: [String], in directory: URL? = nil) throws -> Run {
        let captured = try temporaryDirectory()
        let outURL = captured.appendingPathComponent("stdout"), errURL = captured.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                   stderr: try String(contentsOf: errURL, encoding: .utf8))
    }

    /// `data` parsed as a JSON object.
    func jsonObject(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// A new empty folder, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuits-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// The tiny Llama GGUF fixture: a model small enough to run discover in a fraction of a second.
    let tinyLlama = Fixtures.url("tiny-llama-gguf/tiny-llama.gguf").path

    /// Eight pairs the tiny model's tokenizer reads with one-token answers, written into `directory`.
    func tinyPairs(in directory: URL) throws -> String {
        let url = directory.appendingPathComponent("pairs.jsonl")
        let lines = ["the", "a", "one", "my", "your", "his", "our", "that"].map {
            #"{"clean": "\#($0) cat sat on the", "corrupt": "\#($0) dog sat on the", "correct": [" c"], "incorrect": [" d"]}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}

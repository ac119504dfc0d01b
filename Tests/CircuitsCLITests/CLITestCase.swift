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

    /// A new empty folder, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuits-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

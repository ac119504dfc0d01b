import Foundation
import TestSupport
import XCTest

/// A short run of the mutation fuzzer (Tests/Fuzz/fuzz.py): no crash, no hang, and every error one
/// line naming the file. `CIRCUITKIT_FUZZ_CASES` sets the number of cases (default 270).
final class FuzzTests: CLITestCase {
    func testMutatedInputsGiveClearErrorsAndNoCrash() throws {
        let cases = ProcessInfo.processInfo.environment["CIRCUITKIT_FUZZ_CASES"] ?? "270"
        let python = URL(fileURLWithPath: "/usr/bin/env")
        let report = try temporaryDirectory().appendingPathComponent("fuzz.md")
        let process = Process()
        process.executableURL = python
        process.arguments = ["python3", Fixtures.repositoryRoot.appendingPathComponent("Tests/Fuzz/fuzz.py").path, "--cases", cases,
                             "--seed", "7", "--circuits", try executable().path, "--report", report.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { throw XCTSkip("python3 is not available to run the fuzzer") }
        process.waitUntilExit()
        let table = (try? String(contentsOf: report, encoding: .utf8)) ?? ""
        print(table)
        XCTAssertEqual(process.terminationStatus, 0, "the fuzzer found crashes or hangs:\n\(table)")
        let all = try XCTUnwrap(table.split(separator: "\n").first { $0.hasPrefix("| **all**") }, table)
        let counts = all.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        // Columns: input, cases, ok, error, vague error, silent NaN, crash, hang.
        XCTAssertEqual(counts[1], cases, table)
        XCTAssertEqual(Array(counts[4...7]), ["0", "0", "0", "0"], "vague errors, silent NaN, crashes, hangs:\n\(table)")
    }
}

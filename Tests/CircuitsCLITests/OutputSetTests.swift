import Foundation
import TestSupport
import XCTest

/// `discover`'s outputs as a set: an earlier different result is kept, `--json` alone writes no files,
/// a slow or failed render leaves no stale picture, and a killed run leaves the old set or the new one.
final class OutputSetTests: CLITestCase {
    /// `discover` on the tiny model keeping `edges` edges, written to `out` as `c.*`.
    private func discoverArguments(pairs: String, edges: Int, out: URL, extra: [String] = []) -> [String] {
        ["discover", "--model", tinyLlama, "--data", pairs, "--method", "eap", "--held-out", "0", "--edges", "\(edges)",
         "--out", out.path, "--name", "c", "--top", "0"] + extra
    }

    /// The files of a folder by name (hidden ones included), with their contents; the records'
    /// `provenance.date` line is left out, since runs at different times differ in it.
    private func contents(of directory: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) ?? Data()
            let undated = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("    \"date\" : ") }.joined(separator: "\n")
            files[name] = name.hasSuffix(".json") ? Data(undated.utf8) : data
        }
        return files
    }

    func testEarlierDifferentResultIsKeptAndJSONAloneWritesNothing() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        let first = try circuits(discoverArguments(pairs: pairs, edges: 20, out: out))
        XCTAssertEqual(first.status, 0, first.stderr)
        let original = try contents(of: out)
        XCTAssertNotNil(original["c.json"])
        // The same result again replaces nothing that differs and keeps no copy.
        let again = try circuits(discoverArguments(pairs: pairs, edges: 20, out: out))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try contents(of: out), original)
        // A different result keeps the earlier set as c.1.*.
        let other = try circuits(discoverArguments(pairs: pairs, edges: 5, out: out))
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertTrue(other.stderr.contains("kept the earlier, different c results as c.1."), other.stderr)
        let after = try contents(of: out)
        for (name, data) in original {
            XCTAssertEqual(after[name.replacingOccurrences(of: "c.", with: "c.1.")], data, name)
        }
        XCTAssertNotEqual(after["c.json"], original["c.json"])
        // --json without --out or --name prints the record and writes no files (not even Graphs/).
        let json = try circuits(["discover", "--model", tinyLlama, "--data", pairs, "--method", "eap", "--held-out", "0",
                                 "--edges", "5", "--json"], in: directory)
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("Graphs").path))
    }

    /// Without a new picture, the earlier circuit's SVG does not stay beside the new JSON.
    func testNoStalePictureWithoutARender() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        XCTAssertEqual(try circuits(discoverArguments(pairs: pairs, edges: 20, out: out)).status, 0)
        guard FileManager.default.fileExists(atPath: out.appendingPathComponent("c.svg").path) else {
            throw XCTSkip("Graphviz `dot` is not installed: no SVG to go stale")
        }
        let unrendered = try circuits(discoverArguments(pairs: pairs, edges: 5, out: out, extra: ["--render-timeout", "0"]))
        XCTAssertEqual(unrendered.status, 0, unrendered.stderr)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        XCTAssertEqual(names, ["c.json", "c.dot", "c.1.json", "c.1.dot", "c.1.svg"])
    }

    /// Runs killed by SIGINT, SIGTERM or SIGKILL at random moments leave the complete earlier set or the
    /// complete new one, never a mix. Only SIGKILL can leave a hidden staging folder (and, if it lands
    /// between two renames, a half-moved set); the next run of the same name finishes or removes it.
    /// `CIRCUITKIT_KILL_RUNS` sets the number of runs (default 300).
    func testKilledRunsLeaveTheOldSetOrTheNewOne() throws {
        let runs = Int(ProcessInfo.processInfo.environment["CIRCUITKIT_KILL_RUNS"] ?? "") ?? 300
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        // The two complete sets, and how long a whole run takes.
        XCTAssertEqual(try circuits(discoverArguments(pairs: pairs, edges: 20, out: out)).status, 0)
        let old = try contents(of: out)
        try FileManager.default.removeItem(at: out)
        let start = Date()
        XCTAssertEqual(try circuits(discoverArguments(pairs: pairs, edges: 5, out: out)).status, 0)
        let duration = Date().timeIntervalSince(start)
        let new = try contents(of: out)
        let backup = Dictionary(uniqueKeysWithValues: old.map { ($0.key.replacingOccurrences(of: "c.", with: "c.1."), $0.value) })
        var outcomes: [String: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        for run in 0..<runs {
            try? FileManager.default.removeItem(at: out)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            for (name, data) in old { try data.write(to: out.appendingPathComponent(name)) }
            let signal = [SIGINT, SIGTERM, SIGKILL][run % 3]
            let process = Process()
            process.executableURL = try executable()
            process.arguments = discoverArguments(pairs: pairs, edges: 5, out: out)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(Double.random(in: 0...1.2, using: &generator) * duration * 1e6))
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            var files = try contents(of: out)
            let staging = files.keys.filter { $0.hasPrefix(".") }
            staging.forEach { files[$0] = nil }
            let newSet = new.merging(backup) { a, _ in a }
            let complete = files == old || files == newSet
            if staging.isEmpty {
                let differing = Set(files.keys).union(newSet.keys).filter { files[$0] != newSet[$0] }.sorted()
                XCTAssertTrue(complete, "run \(run) (signal \(signal)) left a mix: \(files.keys.sorted()); "
                              + "differing from the new set: \(differing); the JSON left: \(String(decoding: files["c.json"] ?? Data(), as: UTF8.self))")
                outcomes[files == old ? "old set" : "new set", default: 0] += 1
            } else {
                // Only SIGKILL escapes the clean-up; the next run finishes or removes what it left.
                XCTAssertEqual(signal, SIGKILL, "run \(run): signal \(signal) left \(staging)")
                outcomes[complete ? "staging left beside a complete set" : "staging left mid-commit", default: 0] += 1
                XCTAssertEqual(try circuits(discoverArguments(pairs: pairs, edges: 5, out: out)).status, 0)
                let next = try contents(of: out)
                XCTAssertFalse(next.keys.contains { $0.hasPrefix(".") }, "run \(run): staging left after the next run")
                XCTAssertEqual(next, new.merging(backup) { a, _ in a }, "run \(run): the next run's set")
            }
            if (testRun?.totalFailureCount ?? 0) > 0 { break }
        }
        print("killed runs: \(outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        XCTAssertEqual(outcomes.values.reduce(0, +), runs)
        if runs >= 30 { XCTAssertGreaterThan(outcomes["old set"] ?? 0, 0, "kills landed before the commit") }
    }
}

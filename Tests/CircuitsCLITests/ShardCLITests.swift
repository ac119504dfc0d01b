import Foundation
import XCTest

/// A run split with `--shard I/N` over processes and put together by `circuits merge` gives the
/// circuit of one run: the same edges and faithfulness, scores equal up to float summation order.
final class ShardCLITests: CLITestCase {
    /// The circuit record `discover` wrote as `directory/c.json`.
    private func record(_ directory: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("c.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Runs `shards` shards of `arguments` as concurrent processes, merges them and compares with one run.
    private func checkShardedRun(_ arguments: [String], shards: Int, in directory: URL) throws {
        let whole = try circuits(arguments + ["--out", directory.appendingPathComponent("one").path, "--name", "c"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let parts = directory.appendingPathComponent("parts")
        let processes = try (1...shards).map { i in
            let process = Process()
            process.executableURL = try executable()
            process.arguments = arguments + ["--out", parts.path, "--name", "c", "--shard", "\(i)/\(shards)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        for process in processes {
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "\(process.arguments!)")
        }
        let files = (1...shards).map { parts.appendingPathComponent("c.shard-\($0)-of-\(shards).json").path }
        // merge runs from another folder: the shards recorded absolute paths.
        let merged = try circuits(["merge"] + files.reversed() + ["--out", directory.appendingPathComponent("merged").path],
                                  in: try temporaryDirectory())
        XCTAssertEqual(merged.status, 0, merged.stderr)
        XCTAssertTrue(merged.stderr.contains("merged \(shards) shards"), merged.stderr)
        let one = try record(directory.appendingPathComponent("one")), other = try record(directory.appendingPathComponent("merged"))
        XCTAssertEqual(one["method"] as? String, other["method"] as? String)
        XCTAssertEqual(try XCTUnwrap(one["faithfulness"] as? Double), try XCTUnwrap(other["faithfulness"] as? Double), accuracy: 1e-6)
        let scores = { (record: [String: Any]) in
            Dictionary(uniqueKeysWithValues: (record["edges"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["score"] as! Double) })
        }
        let a = scores(one), b = scores(other)
        XCTAssertFalse(a.isEmpty)
        XCTAssertEqual(Set(a.keys), Set(b.keys), "the same edges")
        for (name, score) in a { XCTAssertEqual(b[name]!, score, accuracy: 1e-5 * max(1, abs(score)), name) }
    }

    func testFourEAPIGShardsOfThePairsMergeIntoOneRun() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory)
        try checkShardedRun(["discover", "--model", tinyLlama, "--data", pairs, "--method", "eap-ig", "--edges", "30", "--held-out", "0"],
                            shards: 4, in: directory)
    }

    func testFourExactShardsOfTheEdgesMergeIntoOneRun() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory)
        try checkShardedRun(["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--method", "exact", "--edges", "30"],
                            shards: 4, in: directory)
    }

    /// A missing shard, a shard of another run and a method that does not add up are refused.
    func testMergeRefusesIncompleteOrMixedShards() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory)
        let base = ["discover", "--model", tinyLlama, "--data", pairs, "--method", "eap", "--held-out", "0", "--out", directory.path]
        for (i, n) in [(1, 2), (2, 2), (1, 3)] {
            XCTAssertEqual(try circuits(base + ["--name", "r\(n)", "--shard", "\(i)/\(n)"]).status, 0)
        }
        let file = { (name: String) in directory.appendingPathComponent(name).path }
        let missing = try circuits(["merge", file("r2.shard-1-of-2.json")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("the run has 2 shards; missing 2/2"), missing.stderr)
        let mixed = try circuits(["merge", file("r2.shard-1-of-2.json"), file("r3.shard-1-of-3.json")])
        XCTAssertEqual(mixed.status, 1)
        XCTAssertTrue(mixed.stderr.contains("not from the same run"), mixed.stderr)
        let acdc = try circuits(["discover", "--method", "acdc", "--shard", "1/2"])
        XCTAssertEqual(acdc.status, 2)
        XCTAssertTrue(acdc.stderr.contains("--shard applies to --method eap, eap-ig and exact"), acdc.stderr)
        let tooMany = try circuits(base + ["--name", "r9", "--shard", "9/9"])
        XCTAssertEqual(tooMany.status, 2)
        XCTAssertTrue(tooMany.stderr.contains("8 pairs cannot be split 9 ways"), tooMany.stderr)
    }
}

import Foundation
import TestSupport
import XCTest

/// A researcher's workflow on the tiny model: scores files, provenance that `evaluate` uses,
/// `compare`, and `task baseline` on one's own pairs.
final class WorkflowCLITests: CLITestCase {
    /// `discover` with EAP on the tiny model and `pairs`, writing `NAME.*` into `out`.
    private func discover(_ pairs: String, name: String, out: URL, edges: Int = 20, extra: [String] = []) throws -> Run {
        try circuits(["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--method", "eap", "--edges", "\(edges)",
                      "--out", out.path, "--name", name, "--top", "0", "--render-timeout", "0"] + extra)
    }

    private func jsonObject(_ url: URL) throws -> [String: Any] { try jsonObject(Data(contentsOf: url)) }

    func testScoresOutWritesEveryFormatAndIsRefusedWhereItCannotApply() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        var edgeCount = 0
        for ext in ["npy", "npz", "csv", "json"] {
            let file = directory.appendingPathComponent("scores.\(ext)")
            let run = try discover(pairs, name: "c", out: out, extra: ["--scores-out", file.path])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stdout.contains(file.path), run.stdout)
            let data = try Data(contentsOf: file)
            edgeCount = try XCTUnwrap(jsonObject(out.appendingPathComponent("c.json"))["graph_edges"] as? Int)
            switch ext {
            case "npy": XCTAssertEqual(data.count, 128 + 4 * edgeCount, "a 128-byte header, then float32s")
            case "npz": XCTAssertEqual(Array(data.prefix(4)), [0x50, 0x4b, 0x03, 0x04])
            case "csv": XCTAssertEqual(String(decoding: data, as: UTF8.self).split(separator: "\n").count, edgeCount + 1)
            default: XCTAssertEqual((try jsonObject(file)["edges"] as? [String: Any])?.count, edgeCount)
            }
        }
        XCTAssertGreaterThan(edgeCount, 0)
        for (extra, message) in [
            (["--method", "search", "--scores-out", "s.npy"], "--scores-out writes every edge's score"),
            (["--scores-out", "s.txt"], "the extension must be"),
            (["--scores-out", out.appendingPathComponent("c.json").path], "one of this run's own files"),
        ] {
            let run = try discover(pairs, name: "c", out: out, extra: extra)
            XCTAssertEqual(run.status, 2, "\(extra): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), run.stderr)
        }
    }

    func testTheRecordsProvenanceIsWhatEvaluateAndCompareUse() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        XCTAssertEqual(try discover(pairs, name: "a", out: out).status, 0)
        XCTAssertEqual(try discover(pairs, name: "b", out: out, edges: 40, extra: ["--compact"]).status, 0)
        let record = try jsonObject(out.appendingPathComponent("a.json"))
        let provenance = try XCTUnwrap(record["provenance"] as? [String: Any])
        XCTAssertEqual(provenance["data"] as? String, URL(fileURLWithPath: pairs).standardizedFileURL.path)
        XCTAssertEqual((provenance["data_sha256"] as? String)?.count, 64)
        XCTAssertEqual((provenance["model_sha256"] as? String)?.count, 64)
        XCTAssertEqual(provenance["pairs"] as? Int, 6)
        XCTAssertEqual(provenance["held_out_pairs"] as? Int, 2)
        XCTAssertEqual((provenance["method_options"] as? [String: Any])?["chunk_size"] as? Int, 32)
        XCTAssertNotNil(provenance["date"] as? String)
        XCTAssertNil(provenance["task"])

        // evaluate finds the pairs from the record, from another folder, and says so.
        let elsewhere = try temporaryDirectory()
        let evaluated = try circuits(["evaluate", "--circuit", out.appendingPathComponent("a.json").path, "--json"], in: elsewhere)
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        XCTAssertTrue(evaluated.stderr.contains("using the circuit's data: \(provenance["data"]!) (sha256 ok), 6 pairs"), evaluated.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(evaluated.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(result["faithfulness"] as? Double, record["faithfulness"] as? Double)
        XCTAssertEqual((result["held_out"] as? [String: Any])?["pairs"] as? Int, 2)

        // compare: each circuit measured on the pairs both record.
        let compared = try circuits(["compare", out.appendingPathComponent("a.json").path, out.appendingPathComponent("b.json").path, "--json"])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        let comparison = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(compared.stdout.utf8)) as? [String: Any])
        let edges = try XCTUnwrap(comparison["edges"] as? [String: Any])
        let sizes = try [out.appendingPathComponent("a.json"), out.appendingPathComponent("b.json")].map {
            try XCTUnwrap(jsonObject($0)["edges"] as? [Any]).count
        }
        let shared = try XCTUnwrap(edges["shared"] as? Int)
        XCTAssertEqual(edges["only_a"] as? Int, sizes[0] - shared)
        XCTAssertEqual(edges["only_b"] as? Int, sizes[1] - shared)
        XCTAssertEqual(try XCTUnwrap(edges["jaccard"] as? Double), Double(shared) / Double(sizes[0] + sizes[1] - shared), accuracy: 1e-12)
        let measured = try XCTUnwrap(comparison["faithfulness"] as? [[String: Any]])
        XCTAssertEqual(measured.count, 1, "both record the same pairs")
        XCTAssertEqual(measured[0]["pairs_of"] as? String, "A and B")
        XCTAssertEqual(measured[0]["a"] as? Double, record["faithfulness"] as? Double)
        let text = try circuits(["compare", out.appendingPathComponent("a.json").path, out.appendingPathComponent("b.json").path,
                                 "--data", pairs, "-n", "4"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("on the given pairs (pairs.jsonl, 4 pairs"), text.stdout)

        // A changed data file is used with a warning; a record without provenance and a file's task asks for the pairs.
        try (String(contentsOfFile: pairs, encoding: .utf8) + "\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        let changed = try circuits(["evaluate", "--circuit", out.appendingPathComponent("a.json").path])
        XCTAssertEqual(changed.status, 0, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("warning: \(provenance["data"]!) changed since the circuit was found"), changed.stderr)
        var old = record
        old["provenance"] = nil
        let oldFile = directory.appendingPathComponent("old.json")
        try JSONSerialization.data(withJSONObject: old).write(to: oldFile)
        let refused = try circuits(["evaluate", "--circuit", oldFile.path])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("does not record its pairs"), refused.stderr)
        XCTAssertEqual(try circuits(["evaluate", "--circuit", oldFile.path, "--data", pairs]).status, 0)
    }

    func testBaselineOnOnesOwnPairs() throws {
        let directory = try temporaryDirectory()
        let pairs = try tinyPairs(in: directory)
        let run = try circuits(["task", "baseline", "--model", tinyLlama, "--data", pairs])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("data pairs.jsonl on "), run.stdout)
        XCTAssertTrue(run.stdout.contains("8 pairs, metric logit_diff"), run.stdout)
        XCTAssertTrue(run.stdout.contains("correct answers    \" c\" (id "), run.stdout)
        XCTAssertTrue(run.stdout.contains("×8"), run.stdout)
        XCTAssertTrue(run.stdout.contains("first pair         \"the cat sat on the\" / \"the dog sat on the\""), run.stdout)
        let json = try circuits(["task", "baseline", "--model", tinyLlama, "--data", pairs, "-n", "3", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((object["baseline"] as? [String: Any])?["pairs"] as? Int, 3)
        let incorrect = try XCTUnwrap((object["answers"] as? [String: Any])?["incorrect"] as? [[String: Any]])
        XCTAssertEqual(incorrect.first?["token"] as? String, " d")
        XCTAssertEqual(incorrect.first?["pairs"] as? Int, 3)
        let both = try circuits(["task", "baseline", "ioi", "--data", pairs, "--model", tinyLlama])
        XCTAssertEqual(both.status, 2, both.stderr)
    }
}

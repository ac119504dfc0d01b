import Foundation
import TestSupport
import XCTest

/// ACDC from the command line: grouped trials, the state they save, and resuming from it.
final class ACDCCLITests: CLITestCase {
    func testGroupedTrialsRunSaveTheirStateAndResume() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        let common = ["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--method", "acdc", "--out", out.path,
                      "--render-timeout", "0"]
        let run = try circuits(common + ["--name", "grouped", "--trials", "grouped", "--compare", "clean", "--tau", "0.05"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("passes"), run.stderr)
        let record = try jsonObject(Data(contentsOf: out.appendingPathComponent("grouped.json")))
        let selection = try XCTUnwrap(record["selection"] as? String)
        XCTAssertTrue(selection.contains("clean reference, grouped trials"), selection)
        let stateURL = out.appendingPathComponent("grouped.acdc-state.json")
        let state = try jsonObject(Data(contentsOf: stateURL))
        XCTAssertEqual(state["trials"] as? String, "grouped")
        XCTAssertGreaterThan(state["evaluations"] as? Int ?? 0, 0)

        let resumed = try circuits(common + ["--name", "resumed", "--resume", stateURL.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let again = try jsonObject(Data(contentsOf: out.appendingPathComponent("resumed.json")))
        XCTAssertEqual((again["edges"] as? [[String: Any]])?.count, (record["edges"] as? [[String: Any]])?.count)
        let refused = try circuits(common + ["--name", "refused", "--resume", stateURL.path, "--trials", "serial"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--trials does not apply with --resume"), refused.stderr)
    }

    /// By default ACDC compares trials with the clean model at τ = 0.1·|M_clean − M_corrupt|, nodes
    /// first, with attributed trials: its circuit keeps faithfulness 0.9 on its pairs; `--edges-only`
    /// and `--target-faithfulness` change that, and the record says what ran.
    func testTheDefaultKeepsFaithfulnessOnItsPairs() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        let common = ["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--held-out", "0", "--method", "acdc", "--out", out.path,
                      "--render-timeout", "0"]
        let run = try circuits(common + ["--name", "default"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("acdc: τ = ") && run.stderr.contains("(1 − 0.9)"), run.stderr)
        let record = try jsonObject(Data(contentsOf: out.appendingPathComponent("default.json")))
        let selection = try XCTUnwrap(record["selection"] as? String)
        XCTAssertTrue(selection.contains("clean reference, attributed trials") && selection.contains("nodes removed first"), selection)
        let f = try XCTUnwrap(record["faithfulness"] as? Double)
        XCTAssertEqual(f, 1, accuracy: 0.1 + 1e-6, "faithfulness on its pairs")
        XCTAssertLessThan((record["edges"] as? [Any])?.count ?? .max, 110, "the default removes edges")

        let loose = try circuits(common + ["--name", "loose", "--target-faithfulness", "0.5", "--edges-only"])
        XCTAssertEqual(loose.status, 0, loose.stderr)
        let looser = try jsonObject(Data(contentsOf: out.appendingPathComponent("loose.json")))
        XCTAssertEqual(try XCTUnwrap(looser["faithfulness"] as? Double), 1, accuracy: 0.5 + 1e-6)
        XCTAssertFalse((looser["selection"] as? String ?? "").contains("nodes removed first"), "\(looser["selection"] ?? "")")
        XCTAssertLessThanOrEqual((looser["edges"] as? [Any])?.count ?? .max, (record["edges"] as? [Any])?.count ?? 0)
    }

    /// `--nodes-first` runs node trials before the edges, says so in the record and the state, and is
    /// refused with another method.
    func testNodesFirstRunsAndIsRefusedWithOtherMethods() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        let common = ["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--out", out.path, "--render-timeout", "0"]
        let run = try circuits(common + ["--method", "acdc", "--name", "nodes", "--trials", "attributed", "--nodes-first", "--tau", "0.05"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("nodes"), run.stderr)
        let record = try jsonObject(Data(contentsOf: out.appendingPathComponent("nodes.json")))
        let selection = try XCTUnwrap(record["selection"] as? String)
        XCTAssertTrue(selection.contains("attributed trials") && selection.contains("nodes removed first"), selection)
        let state = try jsonObject(Data(contentsOf: out.appendingPathComponent("nodes.acdc-state.json")))
        XCTAssertEqual(state["nodesFirst"] as? Bool ?? state["nodes_first"] as? Bool, true, "\(state.keys.sorted())")
        let refused = try circuits(common + ["--method", "eap", "--nodes-first"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--nodes-first only applies to --method acdc"), refused.stderr)
    }
}

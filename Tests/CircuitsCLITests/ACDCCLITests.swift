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

import Foundation
import TestSupport
import XCTest

/// Node-level circuits (`discover --level node`), the node summary (`discover` and `circuits nodes`),
/// and progress lines when stderr is not a terminal, on the tiny model.
final class NodesCLITests: CLITestCase {
    /// `discover` on the tiny model and `pairs`, writing `NAME.*` into `out`.
    private func discover(_ pairs: String, name: String, out: URL, _ extra: [String]) throws -> Run {
        try circuits(["discover", "--model", tinyLlama, "--data", pairs, "-n", "6", "--out", out.path, "--name", name,
                      "--render-timeout", "0"] + extra)
    }

    func testNodeLevelCircuitsKeepTheEdgesAmongTheirNodes() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        for method in ["eap", "eap-ig", "exact"] {
            let run = try discover(pairs, name: method, out: out, ["--level", "node", "--method", method, "--nodes", "3"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stdout.contains("nodes, "), run.stdout)
            XCTAssertTrue(run.stdout.contains("top 3 nodes, pruned"), run.stdout)
            XCTAssertTrue(run.stdout.contains("top nodes (score"), run.stdout)
            let record = try jsonObject(Data(contentsOf: out.appendingPathComponent("\(method).json")))
            XCTAssertEqual(record["level"] as? String, "node")
            XCTAssertEqual(record["method"] as? String, method)
            let nodes = try XCTUnwrap(record["nodes"] as? [[String: Any]]).compactMap { $0["name"] as? String }
            XCTAssertTrue((1...3).contains(nodes.count), "\(nodes)")
            let edges = try XCTUnwrap(record["edges"] as? [[String: Any]])
            XCTAssertFalse(edges.isEmpty)
            for edge in edges {
                XCTAssertTrue(["input"].contains(edge["sender"] as? String) || nodes.contains(edge["sender"] as? String ?? ""), "\(edge)")
                XCTAssertTrue(["logits"].contains(edge["receiver"] as? String) || nodes.contains(edge["receiver"] as? String ?? ""), "\(edge)")
            }
            XCTAssertNotNil(record["faithfulness"] as? Double)
            XCTAssertEqual((record["held_out"] as? [String: Any])?["pairs"] as? Int, 2)
            let summary = try XCTUnwrap(record["node_summary"] as? [[String: Any]]).compactMap { $0["node"] as? String }
            XCTAssertEqual(Set(summary), Set(nodes))
            let dot = try String(contentsOf: out.appendingPathComponent("\(method).dot"), encoding: .utf8)
            XCTAssertTrue(dot.contains("level=node; nodes=\(nodes.count); edges=\(edges.count);"), dot)
        }
        let exact = try discover(pairs, name: "exact", out: out, ["--level", "node", "--method", "exact", "--nodes", "3"])
        XCTAssertTrue(exact.stderr.contains("exact: 11/11 nodes"), "the final progress line: \(exact.stderr)")

        for (extra, message) in [
            (["--level", "node", "--method", "acdc"], "--level node scores nodes with eap, eap-ig or exact (node patching); acdc chooses edges"),
            (["--level", "node", "--method", "search"], "search chooses edges"),
            (["--level", "node", "--edges", "5"], "--edges ranks or lists edges"),
            (["--level", "node", "--target-faithfulness", "0.8"], "--target-faithfulness ranks or lists edges"),
            (["--nodes", "3"], "--nodes only applies with --level node"),
            (["--level", "heads"], "--level must be edge or node, got 'heads'"),
        ] {
            let run = try discover(pairs, name: "refused", out: out, extra)
            XCTAssertEqual(run.status, 2, "\(extra): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains(message), run.stderr)
        }
    }

    func testNodeSummaryOfAnEdgeCircuit() throws {
        let directory = try temporaryDirectory(), out = directory.appendingPathComponent("out")
        let pairs = try tinyPairs(in: directory)
        let found = try discover(pairs, name: "c", out: out, ["--method", "exact", "--edges", "30"])
        XCTAssertEqual(found.status, 0, found.stderr)
        XCTAssertTrue(found.stdout.contains("Σ|score|"), found.stdout)
        XCTAssertTrue(found.stderr.contains("exact: 110/110 edges"), "the final progress line: \(found.stderr)")
        XCTAssertLessThan(found.stderr.components(separatedBy: "exact: ").count - 1, 5, "rate-limited: \(found.stderr)")
        let file = out.appendingPathComponent("c.json")
        let record = try jsonObject(Data(contentsOf: file))
        let edges = try XCTUnwrap(record["edges"] as? [[String: Any]])

        let run = try circuits(["nodes", file.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let nodes = try XCTUnwrap(jsonObject(Data(run.stdout.utf8))["nodes"] as? [[String: Any]])
        XCTAssertFalse(nodes.isEmpty)
        for node in nodes {
            let name = try XCTUnwrap(node["node"] as? String)
            XCTAssertFalse(["input", "logits"].contains(name))
            let incoming = edges.filter { $0["receiver"] as? String == name }, outgoing = edges.filter { $0["sender"] as? String == name }
            XCTAssertEqual(node["in_degree"] as? Int, incoming.count, name)
            XCTAssertEqual(node["out_degree"] as? Int, outgoing.count, name)
            let total = (incoming + outgoing).reduce(0.0) { $0 + abs($1["score"] as? Double ?? .nan) }
            XCTAssertEqual(try XCTUnwrap(node["abs_score"] as? Double), total, accuracy: 1e-5 * max(1, total), name)
        }
        let named = Set(edges.flatMap { [$0["sender"] as? String, $0["receiver"] as? String] }.compactMap { $0 }).subtracting(["input", "logits"])
        XCTAssertEqual(Set(nodes.compactMap { $0["node"] as? String }), named, "every head and MLP of the circuit")
        XCTAssertEqual(try XCTUnwrap(record["node_summary"] as? [[String: Any]]).count, nodes.count, "discover's record has the same summary")

        let text = try circuits(["nodes", file.path, "--top", "2"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stdout.split(separator: "\n").count, 2 + 2, "header, column names and two nodes: \(text.stdout)")
        let missing = try circuits(["nodes", directory.appendingPathComponent("none.json").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("none.json"), missing.stderr)
        XCTAssertEqual(try circuits(["nodes"]).status, 2)
    }
}

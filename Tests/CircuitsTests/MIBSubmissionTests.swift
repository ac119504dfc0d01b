import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

/// MIB's submission forms: EAP-IG's graph JSON with every edge's score, and one circuit per budget.
final class MIBSubmissionTests: XCTestCase {
    func testBothFormsDescribeTheScoresAndCircuits() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let g = model.graph
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff)
        let circuit = g.pruned(Selection.topN(20).select(scores, graph: g))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mib-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try MIBSubmission.write(scores: scores, signed: true, circuit: circuit, graph: g, dModel: model.config.dModel,
                                            name: "ioi_tiny", to: directory)
        XCTAssertEqual(files.count, 1 + MIBSubmission.circuitBudgets.count)

        func load(_ url: URL) throws -> (cfg: [String: Any], nodes: [String: [String: Any]], edges: [String: [String: Any]]) {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            return (try XCTUnwrap(object["cfg"] as? [String: Any]), try XCTUnwrap(object["nodes"] as? [String: [String: Any]]),
                    try XCTUnwrap(object["edges"] as? [String: [String: Any]]))
        }
        let importances = try load(files[0])
        XCTAssertEqual(importances.cfg["n_layers"] as? Int, model.config.layers)
        XCTAssertEqual(importances.cfg["n_heads"] as? Int, model.config.heads)
        XCTAssertEqual(importances.cfg["parallel_attn_mlp"] as? Bool, false)
        XCTAssertEqual(importances.edges.count, g.edgeCount)
        XCTAssertEqual(importances.nodes.count, g.senders.count + 1)
        let kept = Set(circuit)
        for e in 0..<g.edgeCount {
            let record = try XCTUnwrap(importances.edges[g.edge(e).name], g.edge(e).name)
            XCTAssertEqual(try XCTUnwrap(record["score"] as? Double), Double(scores[e]), accuracy: 1e-6 * Double(abs(scores[e]) + 1e-6))
            XCTAssertEqual(record["in_graph"] as? Bool, kept.contains(e))
        }
        XCTAssertEqual(importances.nodes["logits"]?["in_graph"] as? Bool, true)

        // Each budget's circuit: no more edges than the budget, nested, and every kept edge's nodes in the graph.
        var previous = Set<String>()
        for (file, budget) in zip(files.dropFirst(), MIBSubmission.circuitBudgets) {
            let form = try load(file)
            XCTAssertNil(form.edges.values.first?["score"], "the circuit form carries no scores")
            let inGraph = Set(form.edges.filter { $0.value["in_graph"] as? Bool == true }.keys)
            XCTAssertLessThanOrEqual(inGraph.count, Int(budget * Double(g.edgeCount)), file.lastPathComponent)
            XCTAssertTrue(previous.isSubset(of: inGraph), file.lastPathComponent)
            for name in inGraph {
                let edge = try XCTUnwrap(g.edge(named: name))
                XCTAssertEqual(form.nodes[edge.sender.name]?["in_graph"] as? Bool, true, name)
            }
            previous = inGraph
        }
        XCTAssertGreaterThan(previous.count, 0)
    }
}

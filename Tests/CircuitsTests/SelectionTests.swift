import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

/// Selection, pruning, faithfulness and the circuit file formats.
final class SelectionTests: XCTestCase {
    let g = CircuitGraph(layers: 3, heads: 2)

    private func index(_ name: String) -> Int { g.index(of: g.edge(named: name)!)! }

    func testTopNThresholdAndGreedy() {
        var scores = [Float](repeating: 0, count: g.edgeCount)
        scores[index("a1.h0->logits")] = -3
        scores[index("input->a1.h0<v>")] = 2
        scores[index("a0.h1->m2")] = 2.5  // large, but its receiver is not reachable from logits yet
        scores[index("m0->a1.h0<q>")] = 0.5
        XCTAssertEqual(Selection.topN(2).select(scores, graph: g), [index("a1.h0->logits"), index("a0.h1->m2")])
        XCTAssertEqual(Set(Selection.threshold(1).select(scores, graph: g)),
                       Set([index("a1.h0->logits"), index("input->a1.h0<v>"), index("a0.h1->m2")]))
        // Greedy grows from logits: after a1.h0->logits it may take edges into a1.h0, not into m2.
        XCTAssertEqual(Selection.greedy(3).select(scores, graph: g),
                       [index("a1.h0->logits"), index("input->a1.h0<v>"), index("m0->a1.h0<q>")])
    }

    func testPruningKeepsExactlyTheEdgesOnInputToLogitsPaths() {
        let onPath = ["input->a0.h1<k>", "a0.h1->a2.h0<v>", "a2.h0->logits", "input->m1", "m1->logits", "a0.h1->m1"]
        let dangling = [
            "input->a1.h1<q>",  // a1.h1 has no outgoing kept edge
            "m0->a2.h1<v>",  // m0 has no incoming kept edge
            "a2.h1->logits",  // a2.h1 is fed only by m0, which is not reached from input
            "a1.h0->m2",  // m2 does not reach logits, a1.h0 is not reached
        ]
        let pruned = g.pruned((onPath + dangling).map(index))
        XCTAssertEqual(Set(pruned), Set(onPath.map(index)))
        XCTAssertEqual(g.pruned(pruned), pruned, "pruning is idempotent")
        XCTAssertEqual(g.pruned(0..<g.edgeCount).count, g.edgeCount, "the full graph is all on paths")
    }

    func testFaithfulnessOfTheFullAndEmptyCircuits() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.url("tiny-gpt2"))
        let reference = try ReferenceFile("tiny-gpt2")
        let pairs = PairBatch(clean: try reference.batch("clean_tokens"), corrupt: try reference.batch("corrupt_tokens"),
                              correct: try reference.json("correct"), incorrect: try reference.json("incorrect"))
        for metric in Metric.allCases {
            let e = try Experiment(model: model, pairs: pairs, metric: metric)
            XCTAssertEqual(e.evaluate(circuit: Array(0..<e.graph.edgeCount)).faithfulness, 1, accuracy: 1e-9)
            XCTAssertEqual(e.evaluate(circuit: []).faithfulness, 0, accuracy: 1e-4)
            // A curve over sizes: the largest size is the full graph.
            let scores = (0..<e.graph.edgeCount).map { Float($0 % 7) - 3 }
            let curve = e.faithfulnessCurve(scores: scores, sizes: [1, 10, e.graph.edgeCount])
            XCTAssertEqual(curve.last!.edges, e.graph.edgeCount)
            XCTAssertEqual(curve.last!.faithfulness, 1, accuracy: 1e-9)
            let smallest = e.smallestCircuit(scores: scores, target: 0.99)
            XCTAssertGreaterThanOrEqual(smallest.point.faithfulness, 0.99)
            if smallest.requested > 1 {
                let below = e.evaluate(circuit: e.graph.pruned(Selection.topN(smallest.requested - 1).select(scores, graph: e.graph)))
                XCTAssertLessThan(below.faithfulness, 0.99, "bisection should stop at the first size reaching the target")
            }
        }
    }

    /// A target no top-n circuit reaches gives the whole graph, said in the record and in a warning.
    func testAnUnreachableTargetFaithfulnessIsReported() throws {
        struct FixedScores: DiscoveryMethod {
            let scores: [Float]
            var name: String { "fixed" }
            var details: String { "" }
            func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput { .scores(scores) }
        }
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let setup = DiscoverySetup(model: model, pairs: pairs, source: "tiny", metric: .logitDiff)
        let scores = (0..<model.graph.edgeCount).map { Float($0 % 7) - 3 }
        var notes: [String] = []
        let result = try Discovery.run(FixedScores(scores: scores), on: setup, choice: .targetFaithfulness(2)) {
            if case .note(let text) = $0 { notes.append(text) }
        }
        XCTAssertTrue(result.circuit.selection.contains("not reached"), result.circuit.selection)
        XCTAssertTrue(notes.contains { $0.contains("warning: no top-n circuit reaches faithfulness 2") }, "\(notes)")
        let reached = try Discovery.run(FixedScores(scores: scores), on: setup, choice: .targetFaithfulness(0.5))
        XCTAssertGreaterThanOrEqual(reached.circuit.faithfulness, 0.5)
        XCTAssertFalse(reached.circuit.selection.contains("not reached"))
    }

    private func sampleCircuit() -> Circuit {
        let edges = ["a2.h0->logits", "a0.h1->a2.h0<v>", "input->a0.h1<k>", "m1->logits", "a0.h1->a2.h0<q>", "input->m1"]
        let scores: [Float] = [-1.5, 0.9, -0.4, 0.3, -0.2, 0.1]
        return Circuit(model: "tiny", task: "ioi \"quoted\"", method: "eap-ig", metric: .logitDiff, ablation: .resample, pairs: 3,
                       selection: "top 6", cleanMetric: 4.5, corruptMetric: 0.1, circuitMetric: 3.9, faithfulness: 0.86,
                       graphEdges: g.edgeCount,
                       edges: zip(edges, scores).map { Circuit.EdgeRecord(g.edge(named: $0)!, score: $1) })
    }

    func testCircuitJSONRoundTrips() throws {
        let circuit = sampleCircuit()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuit-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try circuit.jsonData().write(to: url)
        let loaded = try Circuit.load(url)
        XCTAssertEqual(loaded.edges, circuit.edges)
        XCTAssertEqual(try loaded.edgeIndices(in: g), circuit.edges.map { index($0.name) })
        XCTAssertEqual(loaded.edges[1].port, "v")
        XCTAssertEqual(loaded.edges[1].receiver, "a2.h0")
        XCTAssertNil(loaded.edges[0].port)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: circuit.jsonData()) as? [String: Any])
        XCTAssertEqual(json["clean_metric"] as? Double, 4.5)
        XCTAssertEqual(json["metric"] as? String, "logit_diff")
        // A circuit from another model's graph is refused by name.
        XCTAssertThrowsError(try loaded.edgeIndices(in: CircuitGraph(layers: 2, heads: 2)))
        try Data("{\"model\": 1}".utf8).write(to: url)
        XCTAssertThrowsError(try Circuit.load(url)) { XCTAssertTrue("\($0)".contains(url.path), "\($0)") }
    }

    func testDOTRendersWithoutGraphvizWarnings() throws {
        let dot = sampleCircuit().dot()
        XCTAssertTrue(dot.contains("rankdir=BT"))
        XCTAssertTrue(dot.contains("\"a2.h0\" -> \"logits\" [color=firebrick3"), "negative edges are red")
        XCTAssertTrue(dot.contains("\"m1\" -> \"logits\" [color=royalblue3"), "positive edges are blue")
        XCTAssertTrue(dot.contains("\"a0.h1\" -> \"a2.h0\" [color=royalblue3, penwidth=2.60, tooltip=\"a0.h1->a2.h0<v> 0.9\", arrowhead=diamond, label=\"v\""),
                      "the sign colours q/k/v edges too; the port is the label and arrowhead")
        XCTAssertTrue(dot.contains("\"input\" -> \"a0.h1\" [color=firebrick3"), "a negative k edge is red")
        XCTAssertTrue(dot.contains("legend [shape=plaintext"))
        // Rows bottom to top: input, layer 0's heads, layer 1's MLP, layer 2's heads, logits, chained by invisible edges.
        XCTAssertTrue(dot.contains("\"input\" -> \"a0.h1\" [style=invis];\n  \"a0.h1\" -> \"m1\" [style=invis];\n"
                                   + "  \"m1\" -> \"a2.h0\" [style=invis];\n  \"a2.h0\" -> \"logits\" [style=invis];"), dot)
        XCTAssertTrue(dot.contains("\"m1\" [shape=box") && dot.contains("\"a0.h1\" [shape=ellipse"))
        // The compact picture merges a0.h1's q and v edges into a2.h0: one edge, scores summed (0.9 − 0.2).
        let compact = sampleCircuit().dot(compact: true)
        XCTAssertEqual(compact.components(separatedBy: "\"a0.h1\" -> \"a2.h0\" [").count, 2, compact)
        XCTAssertTrue(compact.contains("tooltip=\"a0.h1->a2.h0<v> 0.9; a0.h1->a2.h0<q> -0.2\", arrowhead=normal, label=\"q,v\""), compact)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dot-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, text) in [("c", dot), ("compact", compact)] {
            try renderWithoutWarnings(text, name: name, in: directory)
        }
    }

    /// Renders `dot` with Graphviz into `directory` and checks it printed nothing and made an SVG.
    private func renderWithoutWarnings(_ dot: String, name: String, in directory: URL) throws {
        let input = directory.appendingPathComponent("\(name).dot")
        try Data(dot.utf8).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["dot", "-Tsvg", input.path, "-o", directory.appendingPathComponent("\(name).svg").path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let warnings = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 {
            let message = "Graphviz `dot` is not installed"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message) }
            throw XCTSkip(message)
        }
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(warnings, "", "Graphviz printed warnings")
        let svg = try String(contentsOf: directory.appendingPathComponent("\(name).svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("<svg"))
    }
}

/// MIB's areas (design §12).
final class MIBScoresTests: XCTestCase {
    /// The trapezoid areas of known curves.
    func testAreasByTheTrapezoidRule() {
        let points = [(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)].map { MIBScores.Point(budget: $0.0, requested: 0, edges: 0, faithfulness: $0.1) }
        XCTAssertEqual(MIBScores.area(points) { $0 }, 0.75, accuracy: 1e-12)
        XCTAssertEqual(MIBScores.area(points) { abs(1 - $0) }, 0.25, accuracy: 1e-12)
    }

    /// No edges is the corrupted run (f = 0) and every edge the clean one (f = 1), whatever the scores.
    func testEndpointsOfTheBudgetAxis() throws {
        let model = AttributionTests.plantedModel(), pairs = AttributionTests.plantedPairs()
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: 5)
        let mib = experiment.mibScores(scores, budgets: [0, 1])
        XCTAssertEqual(mib.cpr, 0.5, accuracy: 1e-6)
        XCTAssertEqual(mib.cmd, 0.5, accuracy: 1e-6)
        // The planted circuit's two edges carry everything: at a budget of 2 edges both rankings find it.
        let two = experiment.mibScores(scores, budgets: [2.5 / Double(model.graph.edgeCount)])
        XCTAssertEqual(two.cprPoints[0].requested, 2)
        XCTAssertEqual(two.cprPoints[0].faithfulness, 1, accuracy: 0.05)
        XCTAssertEqual(two.cmdPoints[0].faithfulness, 1, accuracy: 0.05)
    }
}

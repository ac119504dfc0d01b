import Circuits
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// Node-level circuits: node scores from EAP and from node patching against independent
/// computations, the circuit among chosen nodes, and the node summary of an edge circuit.
final class NodeCircuitTests: XCTestCase {
    /// A node's EAP score (the sum of its outgoing edges' scores) is ∂M/∂t when all its outgoing edges
    /// get α = t: compare with a central difference of the patched metric.
    func testEAPNodeScoresAreTheDerivativeOfCorruptingTheNodeEverywhere() throws {
        for name in ["tiny-gpt2", "tiny-llama"] {
            let (model, _, pairs) = try tinyFixture(name)
            let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
            let g = experiment.graph
            let nodes = g.nodeScores(try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff))
            for s in [0, 1, 2, g.heads, g.heads + 1, g.senders.count - 2, g.senders.count - 1] {
                /// Central difference with step h along the node's outgoing edges.
                func derivative(_ h: Float) -> Double {
                    var plus = EdgeMask(graph: g), minus = EdgeMask(graph: g)
                    for e in g.outgoingEdges(ofSender: s) {
                        plus[e] = h
                        minus[e] = -h
                    }
                    return (experiment.evaluate(plus) - experiment.evaluate(minus)) / (2 * Double(h))
                }
                let numeric = (4 * derivative(0.01) - derivative(0.02)) / 3
                XCTAssertEqual(Double(nodes[s]), numeric, accuracy: 2e-4 + 2e-3 * abs(numeric), "\(name) \(g.senders[s].name)")
            }
            XCTAssertGreaterThan(nodes.map { abs($0) }.max()!, 1e-3, "\(name): some node matters")
        }
    }

    /// Node patching against a plain forward pass in which the node's corrupted-minus-clean output is
    /// added to the residual stream where the node writes it (so every later reader sees it).
    func testNodePatchingEqualsAForwardWithTheNodesOutputReplaced() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let g = experiment.graph, c = model.config
        let clean = try model.forward(pairs.clean, captureSenders: true), corrupt = try model.forward(pairs.corrupt, captureSenders: true)
        let layout = clean.layout, plane = layout.rows * c.dModel
        let scores = NodePatching.scores(experiment)
        XCTAssertEqual(scores.count, g.senders.count)
        let targets = MetricTargets(correct: pairs.correct, incorrect: pairs.incorrect)
        for (s, sender) in g.senders.enumerated() {
            /// Adds corrupt_s − clean_s to `stream`.
            func replace(_ stream: UnsafeMutablePointer<Float>) {
                for j in 0..<plane { stream[j] += corrupt.senders![s * plane + j] - clean.senders![s * plane + j] }
            }
            let acts = LayerActivations(config: c, layout: layout)
            model.embed(acts.residPre.pointer, tokens: pairs.clean.flatMap { $0 }, layout: layout)
            if sender == .input { replace(acts.residPre.pointer) }
            let mlpOut = FloatBuffer(count: plane), final = FloatBuffer(count: plane)
            for l in 0..<c.layers {
                model.attentionForward(layer: l, acts, layout: layout)
                if case .head(l, _) = sender { replace(acts.residMid.pointer) }
                let post = l == c.layers - 1 ? final.pointer : acts.residPre.pointer
                model.mlpForward(layer: l, acts, layout: layout, mlpOut: mlpOut.pointer, residPost: post)
                if sender == .mlp(layer: l) { replace(post) }
            }
            let readout = UnembeddingActivations(config: c, rows: layout.count)
            model.logitsForward(readout, resid: final.pointer, rows: layout.lastRows)
            let value = Metric.logitDiff.evaluate(logits: readout.logits.pointer, vocab: c.vocabularySize, targets: targets).mean
            XCTAssertEqual(Double(scores[s]), value - experiment.cleanMetric, accuracy: 1e-4, sender.name)
        }
        XCTAssertEqual(Double(scores[0]), experiment.corruptMetric - experiment.cleanMetric, accuracy: 1e-4,
                       "corrupting the input everywhere is the corrupted run")
    }

    func testTheCircuitOfSomeNodesIsEveryEdgeAmongThemWithInputAndLogits() throws {
        let g = CircuitGraph(layers: 3, heads: 2)
        let kept = [Sender.head(layer: 0, head: 1), .mlp(layer: 1), .head(layer: 2, head: 0)].map { g.index(of: $0) }
        let expected = (0..<g.edgeCount).filter { e in
            let edge = g.edge(e)
            return (edge.sender == .input || kept.contains(g.index(of: edge.sender)))
                && (edge.receiver == .logits || kept.contains(g.index(of: edge.receiver.node!)))
        }
        XCTAssertEqual(g.edges(amongNodes: kept), expected)
        XCTAssertEqual(expected.count, 3 + 2 + 3 * 3 + 4, "a0.h1: q, k, v from input; m1: input, a0.h1; a2.h0: 3 × 3; logits: 4")
        XCTAssertEqual(try g.selectNodes([9, 1, -5, 0, 2, 0, 0, -3, 0, 0], .topN(2)), [2, 7], "input (first) is never ranked")
        XCTAssertThrowsError(try g.selectNodes([Float](repeating: 0, count: g.senders.count), .greedy(2)))
    }

    /// On the planted model the top node is the copy head, and its node circuit alone keeps the behaviour.
    func testNodeCircuitOfThePlantedModelIsTheCopyHead() throws {
        let model = AttributionTests.plantedModel()
        let setup = DiscoverySetup(model: model, pairs: AttributionTests.plantedPairs(), source: "planted", metric: .logitDiff)
        for method in [ExactMethod() as NodeScoringMethod, EAPMethod(steps: 5)] {
            let circuit = try Discovery.runNodes(method, on: setup, rule: .topN(1)).circuit
            XCTAssertEqual(circuit.level, "node")
            XCTAssertEqual(circuit.nodes?.map(\.name), ["a0.h0"], method.name)
            XCTAssertEqual(circuit.faithfulness, 1, accuracy: 0.05, method.name)
            XCTAssertEqual(Set(circuit.edges.map(\.sender)), ["input", "a0.h0"])
            XCTAssertEqual(circuit.nodeSummary?.map(\.node), ["a0.h0"])
        }
    }

    func testNodeSummaryCountsAndSumsEachNodesEdges() {
        let edges = [
            (Edge(.input, .head(layer: 0, head: 1, port: .v)), Float(-0.5)),
            (Edge(.input, .head(layer: 0, head: 1, port: .q)), 0.25),
            (Edge(.head(layer: 0, head: 1), .mlp(layer: 1)), -1),
            (Edge(.mlp(layer: 1), .logits), 2),
            (Edge(.head(layer: 0, head: 1), .logits), 0.5),
        ]
        let circuit = Circuit(model: "m", task: "t", method: "eap", metric: .logitDiff, ablation: .resample, pairs: 1, selection: "top 5",
                              cleanMetric: 1, corruptMetric: 0, circuitMetric: 1, faithfulness: 1, graphEdges: 100,
                              edges: edges.map { Circuit.EdgeRecord($0.0, score: $0.1) })
        let summary = circuit.summarizeNodes()
        XCTAssertEqual(summary.map(\.node), ["m1", "a0.h1"], "by Σ|score|: m1 3, a0.h1 2.25; input and logits left out")
        let fields = summary.map { [Float($0.inDegree), Float($0.outDegree), $0.inScore, $0.outScore, $0.absScore] }
        XCTAssertEqual(fields, [[1, 1, -1, 2, 3], [2, 2, -0.25, -0.5, 2.25]], "in, out, Σ score in, Σ score out, Σ|score|")
    }
}

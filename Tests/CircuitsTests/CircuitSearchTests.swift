import Circuits
import TestSupport
import Transformer
import XCTest

/// The gradient-guided circuit search on the planted model and the tiny fixtures.
final class CircuitSearchTests: XCTestCase {
    /// Started from a circuit that reads the copy head's query instead of its value, the search swaps
    /// the query edge for the value edge and ends with the planted circuit at faithfulness 1.
    func testCompletesThePlantedCircuit() throws {
        let model = AttributionTests.plantedModel(), pairs = AttributionTests.plantedPairs()
        let g = model.graph
        let value = g.index(of: Edge(.input, .head(layer: 0, head: 0, port: .v)))!
        let output = g.index(of: Edge(.head(layer: 0, head: 0), .logits))!
        let query = g.index(of: Edge(.input, .head(layer: 0, head: 0, port: .q)))!
        var start = [Float](repeating: 0, count: g.edgeCount)
        start[output] = 2
        start[query] = 1
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        XCTAssertLessThan(experiment.evaluate(circuit: [output, query]).faithfulness, 0.5, "the start should not be faithful")
        let search = try CircuitSearch(model: model, pairs: pairs, metric: .logitDiff, cleanMetric: experiment.cleanMetric,
                                       options: .init(edges: 2, steps: 10))
        let found = try search.run(start: start)
        XCTAssertEqual(Set(found.edges), [value, output], found.edges.map { g.edge($0).name }.joined(separator: ", "))
        XCTAssertEqual(experiment.evaluate(circuit: found.edges).faithfulness, 1, accuracy: 0.05)
        XCTAssertEqual(found.metric, experiment.evaluate(circuit: found.edges).metric, accuracy: 1e-4,
                       "the search's own metric should be the patching engine's")
    }

    /// On tiny Llama, from EAP's top 20: the found circuit is much closer to the clean metric than the start, its metric is
    /// what the patching engine measures, and a second run gives the same circuit.
    func testImprovesOnItsStartAndIsDeterministic() throws {
        let (model, _, pairs) = try tinyFixture("tiny-llama")
        let experiment = try Experiment(model: model, pairs: pairs, metric: .logitDiff)
        let start = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff)
        let startEdges = Array(start.indices.sorted { abs(start[$0]) > abs(start[$1]) }.prefix(20))
        let startGap = abs(experiment.evaluate(circuit: startEdges).metric - experiment.cleanMetric)
        func search() throws -> (edges: [Int], metric: Double, gradient: [Float]) {
            try CircuitSearch(model: model, pairs: pairs, metric: .logitDiff, cleanMetric: experiment.cleanMetric,
                              options: .init(edges: 20, steps: 8)).run(start: start)
        }
        let found = try search()
        XCTAssertEqual(found.edges.count, 20)
        let gap = abs(found.metric - experiment.cleanMetric)
        XCTAssertLessThan(gap, 0.5 * startGap, "the search should close at least half of the start's gap to the clean metric")
        XCTAssertEqual(found.metric, experiment.evaluate(circuit: found.edges).metric, accuracy: 1e-4)
        XCTAssertEqual(try search().edges, found.edges)
    }

    /// Options outside their ranges are refused with a reason.
    func testRefusesBadOptions() throws {
        let (model, _, pairs) = try tinyFixture("tiny-gpt2")
        for options in [CircuitSearch.Options(edges: 0), .init(edges: model.graph.edgeCount), .init(edges: 5, steps: -1),
                        .init(edges: 5, moveFraction: 0), .init(edges: 5, tolerance: -1)] {
            XCTAssertThrowsError(try CircuitSearch(model: model, pairs: pairs, metric: .logitDiff, cleanMetric: 1, options: options))
        }
    }
}

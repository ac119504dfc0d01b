import Foundation
import Transformer

/// How the pipeline picks a circuit from edge scores.
public enum CircuitChoice: Sendable, Equatable {
    /// Top-n, threshold or greedy selection.
    case selection(Selection)
    /// The smallest top-n circuit whose faithfulness reaches the target (bisection on n).
    case targetFaithfulness(Double)
}

/// The discovery pipeline (design §6–§8): run a method, choose a circuit from its scores (or take
/// the circuit it chose), prune it, measure its faithfulness and make its record.
///
/// The patching experiment is built once by the setup and shared by the method, the selection and
/// the evaluation; EAP and EAP-IG run before it exists and hand it their clean and corrupted runs
/// when those fit the cache budget (`DiscoverySetup.sharingRuns`), so the prompts run once.
public enum Discovery {
    /// A discovered circuit and what was measured on the way.
    public struct Result {
        /// The circuit's record, as `circuits evaluate` loads it.
        public var circuit: Circuit
        /// Every edge's score, when the method scored edges.
        public var scores: [Float]?
        /// Seconds the method took.
        public var methodSeconds: Double
        /// Faithfulness of the pruned top-n circuits at the requested curve sizes.
        public var curve: [FaithfulnessPoint]
    }

    /// Runs `method` on `setup` and makes the circuit.
    ///
    /// - Parameters:
    ///   - choice: how to choose a circuit from scores (ignored when the method chooses its own)
    ///   - curveSizes: top-n sizes to measure a faithfulness curve at (methods that score edges only)
    ///   - heldOut: fresh pairs (same model, metric and ablation) to measure the circuit on as well
    public static func run(
        _ method: DiscoveryMethod, on setup: DiscoverySetup, choice: CircuitChoice, curveSizes: [Int] = [],
        heldOut: DiscoverySetup? = nil, progress: ProgressNote? = nil
    ) throws -> Result {
        let start = Date()
        let output = try method.run(setup, progress: progress)
        let methodSeconds = Date().timeIntervalSince(start)
        let experiment = try setup.experiment()
        let graph = experiment.graph
        let edges: [Int], selection: String, score: (Int) -> Float
        var scores: [Float]?, curve: [FaithfulnessPoint] = []
        switch output {
        case .circuit(let kept, let measured, let text):
            progress?(.note(String(format: "%@ chose %d edges in %.1f s", method.name, kept.count, methodSeconds)))
            edges = graph.pruned(kept)
            selection = text
            score = { measured[$0] ?? 0 }
        case .scores(let all):
            progress?(.note(String(format: "scored %d edges in %.1f s", all.count, methodSeconds)))
            scores = all
            score = { all[$0] }
            switch choice {
            case .selection(let rule):
                edges = graph.pruned(rule.select(all, graph: graph))
                selection = rule.description
            case .targetFaithfulness(let target):
                progress?(.note("bisecting over top-n circuits for faithfulness ≥ \(target)"))
                let clock = ProgressClock()
                let found = experiment.smallestCircuit(scores: all, target: target) { probe in
                    let p = probe.point
                    progress?(.step(String(format: "bisect: probe %d (at most %d): top %d → %d edges, faithfulness %.4f; target between top %d and %d, ",
                                           probe.probe, probe.probes, p.requested, p.edges, p.faithfulness, probe.below, probe.reached)
                                    + clock.pace(Double(probe.isLast ? probe.probes : probe.probe), of: Double(probe.probes)), final: probe.isLast))
                }
                edges = found.edges
                if found.point.faithfulness >= target {
                    selection = "target faithfulness \(target) (top \(found.requested))"
                } else {
                    progress?(.note(String(format: "warning: no top-n circuit reaches faithfulness %g; the whole graph gives %.4f", target,
                                           found.point.faithfulness)))
                    selection = "target faithfulness \(target) not reached (top \(found.requested))"
                }
            }
            curve = experiment.faithfulnessCurve(scores: all, sizes: curveSizes)
        }
        var circuit = try record(edges, method: method.name, selection: selection, score: score, experiment: experiment, setup: setup,
                                 heldOut: heldOut)
        circuit.nodeSummary = circuit.summarizeNodes()
        return Result(circuit: circuit, scores: scores, methodSeconds: methodSeconds, curve: curve)
    }

    /// The record of the (pruned) circuit `edges`, measured on the setup's pairs and on `heldOut`'s.
    static func record(
        _ edges: [Int], method: String, selection: String, score: (Int) -> Float, experiment: Experiment, setup: DiscoverySetup,
        heldOut: DiscoverySetup?
    ) throws -> Circuit {
        let graph = experiment.graph
        let (circuitMetric, faithfulness) = experiment.evaluate(circuit: edges)
        let fresh = try heldOut.map { Circuit.Evaluation(edges, on: try $0.experiment(), source: $0.source) }
        let ranked = edges.sorted { abs(score($0)) > abs(score($1)) }
        return Circuit(
            model: setup.model.source, task: setup.source, method: method, metric: setup.metric, ablation: setup.ablation,
            pairs: setup.pairs.count, selection: selection, cleanMetric: experiment.cleanMetric, corruptMetric: experiment.corruptMetric,
            circuitMetric: circuitMetric, faithfulness: faithfulness, heldOut: fresh, graphEdges: graph.edgeCount,
            edges: ranked.map { Circuit.EdgeRecord(graph.edge($0), score: score($0)) })
    }
}

import Circuits
import Foundation
import Tasks
import Transformer

/// ACDC variants on a built-in task (SmolLM2, 100 pairs): serial or grouped trials, each trial compared
/// with the current graph or with the clean model, at a τ set from a faithfulness floor; each circuit's
/// size, faithfulness on its pairs and on fresh pairs, patched passes and wall time. Runs the same
/// pipeline as `circuits discover --method acdc`.
enum ACDCBenchmark {
    static func run(_ context: BenchmarkContext) throws {
        let task = context.option("--task") ?? "ioi"
        let count = Int(context.option("--pairs") ?? "100") ?? 100
        let floors = (context.option("--floors") ?? "0.9").split(separator: ",").compactMap { Double($0) }
        let variants = try (context.option("--variants") ?? "attributed-clean-nodes").split(separator: ",").map { name in
            let parts = name.split(separator: "-").map(String.init)
            guard [2, 3].contains(parts.count), let trials = ACDC.Trials(rawValue: parts[0]), let reference = ACDC.Reference(rawValue: parts[1]),
                  parts.count == 2 || parts[2] == "nodes" else {
                throw BenchmarkError("a variant is TRIALS-REFERENCE[-nodes] (serial, grouped or attributed; current or clean; nodes first), got '\(name)'")
            }
            return (trials, reference, parts.count == 3)
        }
        let model = try context.model()
        let registry = try TaskRegistry.located()
        let found = try registry.generate(task, count: count, seed: 0, tokenizer: model.tokenizer!)
        let fresh = try registry.generate(task, count: count, seed: 1, tokenizer: model.tokenizer!)
        let metric = found.metric
        let setup = DiscoverySetup(model: model, pairs: PairBatch(found.tokenized), source: "\(task) seed 0", metric: metric,
                                   progress: CircuitsBenchmark.log)
        let heldOut = DiscoverySetup(model: model, pairs: PairBatch(fresh.tokenized), source: "\(task) seed 1", metric: metric,
                                     progress: CircuitsBenchmark.log)
        let experiment = try setup.experiment()
        let difference = abs(experiment.cleanMetric - experiment.corruptMetric)
        var table = ResultsTable(
            title: "ACDC variants: \(task) on SmolLM2-135M-Instruct", command: context.command,
            notes: ["\(count) pairs (\(task) seed 0) to find each circuit and \(count) fresh pairs (seed 1) to measure it again; metric \(metric.rawValue), resample ablation",
                    String(format: "τ = (1 − floor)·|M_clean − M_corrupt| = (1 − floor)·%.4f: with the clean reference the circuit stays within the floor on its pairs; with the current reference each removal may cost τ", difference),
                    "serial: one edge at a time (ACDC as published); grouped: each receiver's edges least important first by EAP-IG (5 steps), all at once, then a galloping search; attributed: the gradient at the current graph (once per layer, from that layer up) keeps the edges it predicts to move the metric by τ or more, the rest go in groups; nodes first: each head and MLP tried whole (all its outgoing edges), from the last layer, before the edges among those that remain (docs/definitions.md)",
                    "passes: patched forward passes over the pairs (one per trial mask), plus gradients (attributed: a masked forward and backward pass each); seconds: the method alone (for grouped, EAP-IG's ordering included), on 2 cores",
                    "edges: the circuit after pruning to input→logits paths"] + found.notes,
            header: ["trials", "compared with", "floor", "τ", "edges", "faithfulness (its pairs)", "faithfulness (fresh pairs)", "passes", "seconds"])
        for floor in floors {
            for (trials, reference, nodesFirst) in variants {
                let tau = (1 - floor) * difference
                progress("-- acdc \(trials.rawValue) trials, \(reference.rawValue) reference\(nodesFirst ? ", nodes first" : ""), τ \(format(tau, 4))")
                final class Passes: @unchecked Sendable { var count = 0, gradients = 0, nodes = 0 }
                let passes = Passes()
                let method = ACDCMethod(threshold: .tau(tau), reference: reference, trials: trials, nodesFirst: nodesFirst) { state, step in
                    (passes.count, passes.gradients, passes.nodes) = (state.evaluations, state.gradients, state.removedNodes.count)
                    if step.receiversDone == 0, step.nodesDone % 50 == 0 {
                        progress("acdc: \(step.nodesDone)/\(step.nodeCount) nodes, \(state.removedNodes.count) removed, \(state.evaluations) passes, \(format(step.seconds, 0)) s")
                    }
                    // The benchmark's log keeps no in-between steps; a line every 50 receivers shows where a long run is.
                    if step.receiversDone > 0, step.receiversDone % 50 == 0 {
                        progress("acdc: \(step.receiversDone)/\(step.receiverCount) receivers, \(step.edgesTried - step.edgesRemoved) kept, "
                                 + "\(state.evaluations) passes, \(state.gradients) gradients, \(format(step.seconds, 0)) s")
                    }
                }
                let result = try Discovery.run(method, on: setup, choice: .selection(.topN(0)), heldOut: heldOut, progress: CircuitsBenchmark.log)
                let circuit = result.circuit
                table.rows.append([trials.rawValue + (nodesFirst ? ", nodes first (\(passes.nodes) of \(model.graph.senders.count - 1) removed)" : ""), reference == .clean ? "clean model" : "current graph", format(floor, 2), format(tau, 4),
                                   "\(circuit.edges.count)", format(circuit.faithfulness, 3), format(circuit.heldOut?.faithfulness, 3),
                                   "\(passes.count)" + (passes.gradients > 0 ? " + \(passes.gradients) gradients" : ""), format(result.methodSeconds, 0)])
                try table.write("acdc-\(task)", to: context.resultsDirectory)
            }
        }
    }
}

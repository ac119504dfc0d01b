import Circuits
import Foundation
import Tasks
import Transformer

/// Faithful circuits per method: for IOI, greater-than and induction on SmolLM2, each method's circuit
/// at the task's edge budget, its faithfulness on the pairs it was found on and on fresh pairs, MIB's
/// CPR and CMD on both, and its wall time. Runs the same pipeline as `circuits discover`.
enum CircuitsBenchmark {
    /// Edge budgets: the targets (IOI ≤ 1,232, greater-than ≤ 150, induction ≤ 500 edges).
    static let budgets = ["ioi": 1000, "greater-than": 150, "induction": 500]

    static func run(_ context: BenchmarkContext) throws {
        let tasks = context.option("--task").map { [$0] } ?? ["ioi", "greater-than", "induction"]
        let count = Int(context.option("--pairs") ?? "100") ?? 100
        let searchSteps = Int(context.option("--search-steps") ?? "25") ?? 25
        let pruneSteps = Int(context.option("--prune-steps") ?? "0") ?? 0
        let pruneLoss = context.option("--prune-loss") ?? "kl"
        guard ["kl", "metric"].contains(pruneLoss) else { throw BenchmarkError("--prune-loss must be kl or metric, got '\(pruneLoss)'") }
        let model = try context.model()
        for task in tasks {
            let budget = try Int(context.option("--edges") ?? "").map { $0 } ?? budgets[task].unwrap(or: "give --edges for task \(task)")
            try benchmark(task: task, budget: budget, count: count, searchSteps: searchSteps, pruneSteps: pruneSteps, pruneLoss: pruneLoss,
                          candidates: Int(context.option("--candidates") ?? "") ?? 3 * budget, model: model, context: context)
        }
    }

    /// A run's notes and each step's final line on stderr (a benchmark's log keeps no in-between steps).
    static func log(_ message: ProgressMessage) {
        switch message {
        case .note(let text), .step(let text, final: true): progress(text)
        case .step: break
        }
    }

    static func benchmark(task: String, budget: Int, count: Int, searchSteps: Int, pruneSteps: Int, pruneLoss: String, candidates: Int,
                          model: TransformerModel, context: BenchmarkContext) throws {
        let registry = try TaskRegistry.located()
        let found = try registry.generate(task, count: count, seed: 0, tokenizer: model.tokenizer!)
        let fresh = try registry.generate(task, count: count, seed: 1, tokenizer: model.tokenizer!)
        let metric = found.metric
        progress("== \(task): \(count) pairs, metric \(metric.rawValue), budget \(budget) edges")

        var methods: [DiscoveryMethod] = [EAPMethod(steps: nil), EAPMethod(steps: 5)]
        // Exact patching of EAP-IG's top K re-ranks them only when K exceeds the budget.
        if candidates > budget { methods.append(RerankMethod(steps: 5, candidates: candidates)) }
        methods.append(SearchMethod(steps: 5, options: .init(edges: budget, steps: searchSteps)))
        if pruneSteps > 0 {
            methods.append(PruneMethod(options: .init(targetEdges: budget, steps: pruneSteps, loss: pruneLoss == "metric" ? metric : .kl), warmStartSteps: 5))
        }
        if let chosen = context.option("--methods")?.split(separator: ",").map(String.init) {
            methods = methods.filter { chosen.contains($0.name) }
            guard !methods.isEmpty else { throw BenchmarkError("--methods names none of eap, eap-ig, eap-ig-exact, search, prune: \(chosen)") }
        }
        // MIB's curves evaluate circuits of up to every edge, minutes each on long prompts.
        let curves = context.option("--curves") != "off"
        var table = ResultsTable(
            title: "Circuits per method: \(task) on SmolLM2-135M-Instruct", command: context.command,
            notes: ["\(count) pairs (\(task) seed 0) to find each circuit and \(count) fresh pairs (seed 1) to measure it again; metric \(metric.rawValue), resample ablation",
                    "each method's circuit is its top \(budget) edges (search: the circuit it found at \(budget) edges), pruned to input→logits paths (the edges column)",
                    "faithfulness = (M_circuit − M_corrupt) / (M_clean − M_corrupt); MIB's CPR is the area under f and CMD the area under |1 − f| over budgets of 0.1 % … 100 % of the \(model.graph.edgeCount) edges",
                    curves ? "CPR ranks by signed score (prune, whose scores only rank, by score); search chooses one circuit and has no ranking to measure CPR/CMD on"
                        : "CPR/CMD not measured in this run (--curves off)",
                    "seconds: the method alone (scoring or searching), on 2 cores; each method gets its own patching experiments (clean and corrupted runs, ~15 s, not counted), as in `circuits discover`"] + found.notes,
            header: ["method", "edges", "faithfulness (its pairs)", "faithfulness (fresh pairs)", "CPR (its / fresh)", "CMD (its / fresh)", "seconds"])
        var series: [LineChart.Series] = []
        var markers: [(x: Double, y: Double)] = []
        let colors = ["#d62728", "#1f77b4", "#9467bd", "#2ca02c", "#ff7f0e"]
        for (method, color) in zip(methods, colors) {
            let label = method.details.isEmpty ? method.name : "\(method.name) (\(method.details))"
            progress("-- \(label)")
            // Each method starts as `circuits discover` does, its experiments built for it: one left from
            // the method before would hold the cache budget its own caches need (learned masks on
            // induction took 1,301 s instead of 874 s behind two of them).
            let setup = DiscoverySetup(model: model, pairs: PairBatch(found.tokenized), source: "\(task) seed 0", metric: metric, progress: log)
            let heldOut = DiscoverySetup(model: model, pairs: PairBatch(fresh.tokenized), source: "\(task) seed 1", metric: metric, progress: log)
            let result = try Discovery.run(method, on: setup, choice: .selection(.topN(budget)), heldOut: heldOut, progress: log)
            let circuit = result.circuit
            var cpr = "—", cmd = "—"
            if curves, let scores = result.scores {
                let own = try setup.experiment().mibScores(scores, signed: method.scoresAreSigned)
                let other = try heldOut.experiment().mibScores(scores, signed: method.scoresAreSigned)
                cpr = "\(format(own.cpr, 3)) / \(format(other.cpr, 3))"
                cmd = "\(format(own.cmd, 3)) / \(format(other.cmd, 3))"
                series.append(.init(name: method.name, color: color,
                                    points: own.cprPoints.map { (Double(max($0.edges, 1)), $0.faithfulness) }))
            }
            markers.append((Double(max(circuit.edges.count, 1)), circuit.faithfulness))
            table.rows.append([label, "\(circuit.edges.count)", format(circuit.faithfulness, 3), format(circuit.heldOut?.faithfulness, 3),
                               cpr, cmd, format(result.methodSeconds, 0)])
            try table.write("circuits-\(task)", to: context.resultsDirectory)
            let chart = LineChart(title: "Faithfulness vs edges: \(task), SmolLM2-135M (its pairs)", xLabel: "edges in circuit (log scale)",
                                  yLabel: "faithfulness",
                                  series: series + [.init(name: "circuits at \(budget)", color: "#000000", points: markers, markersOnly: true)])
            try Data(chart.svg.utf8).write(to: context.resultsDirectory.appendingPathComponent("circuits-\(task).svg"), options: .atomic)
        }
    }
}

extension Optional {
    /// The value, or a benchmark error saying what is missing.
    func unwrap(or message: String) throws -> Wrapped {
        guard let self else { throw BenchmarkError(message) }
        return self
    }
}

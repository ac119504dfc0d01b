import Circuits
import Foundation
import Tasks
import Transformer

/// End to end against scoring: `discover --method eap` (and eap-ig) on 100 IOI pairs, the whole
/// pipeline's wall time (method, clean and corrupted runs, selection, evaluation) next to the
/// method's own, with the method sharing its clean and corrupted runs with the patching experiment
/// and, in the same run, with the experiment built from its own runs (as before the sharing).
enum PipelineBenchmark {
    static func run(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let count = Int(context.option("--pairs") ?? "100") ?? 100
        let pairs = try context.pairs(task: "ioi", model: model, count: count)
        var table = ResultsTable(
            title: "End to end: discover's pipeline against its scoring (IOI, SmolLM2-135M-Instruct)",
            command: context.command,
            notes: ["\(count) IOI pairs (seed 0), logit_diff, resample ablation; top 200 edges, pruned, faithfulness on these pairs (no held-out pairs, which add their own clean and corrupted runs)",
                    "total = `Discovery.run` as `circuits discover` calls it (method, clean and corrupted runs, selection, evaluation); scoring = the method alone",
                    "shared: the method hands its clean and corrupted runs to the experiment; own runs: the experiment runs the prompts again",
                    "best of \(context.repeats) runs per row, rows interleaved in one process"],
            header: ["method", "runs", "scoring", "total", "total / scoring", "faithfulness"])
        let methods: [EAPMethod] = [EAPMethod(steps: nil), EAPMethod(steps: 5)]
        for method in methods {
            var best: [Bool: (scoring: Double, total: Double, faithfulness: Double)] = [:]
            for _ in 0..<context.repeats {
                for shared in [true, false] {
                    let setup = DiscoverySetup(model: model, pairs: pairs, source: "ioi seed 0", metric: .logitDiff)
                    let start = now()
                    // Built before the method, the experiment runs the prompts itself and the method cannot share them.
                    if !shared { _ = try setup.experiment() }
                    let result = try Discovery.run(method, on: setup, choice: .selection(.topN(200)))
                    let total = now() - start
                    if total < best[shared]?.total ?? .infinity {
                        best[shared] = (result.methodSeconds, total, result.circuit.faithfulness)
                    }
                    progress(String(format: "%@ %@: scoring %.1f s, total %.1f s", method.name, shared ? "shared" : "own runs",
                                    result.methodSeconds, total))
                }
            }
            for shared in [true, false] {
                let row = best[shared]!
                table.rows.append([method.details.isEmpty ? method.name : "\(method.name) (\(method.details))", shared ? "shared" : "own runs",
                                   "\(format(row.scoring, 1)) s", "\(format(row.total, 1)) s", format(row.total / row.scoring, 2),
                                   format(row.faithfulness, 4)])
            }
            try table.write("pipeline", to: context.resultsDirectory)
        }
    }
}

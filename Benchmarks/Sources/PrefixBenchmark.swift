import Circuits
import Foundation
import Kernels
import Tasks
import Transformer

/// Shared prefixes: EAP, EAP-IG and patched runs on each task's pairs continuing from each pair's
/// shared prefix (run once) and, in the same process, over whole prompts.
enum PrefixBenchmark {
    static func run(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let count = Int(context.option("--pairs") ?? "100") ?? 100
        let enginePairs = min(count, 32), patchedRuns = 8, circuitEdges = 200, igSteps = 5
        let tasks = context.option("--task").map { [$0] } ?? ["ioi", "greater-than", "induction"]
        var table = ResultsTable(
            title: "Shared prefixes: runs continuing from each pair's shared prefix vs whole prompts (SmolLM2-135M-Instruct)",
            command: context.command,
            notes: ["\(count) pairs (seed 0) per task, resample ablation, the task's metric; best of \(context.repeats), the two settings interleaved in one process",
                    "shared rows: tokens before each pair's first differing token (the last token is always run); the clean, corrupted, interpolated and patched runs all agree there exactly, so the prefix is run once and every run covers the rest",
                    "EAP and EAP-IG (\(igSteps) steps): forward + backward + contraction seconds; patched runs: \(patchedRuns) runs on \(enginePairs) pairs of the circuit of the top \(circuitEdges) EAP edges (every other edge corrupted: evaluation and exact patching), after building the engine",
                    "max |Δscore|: largest difference of EAP scores between the two settings (float summation order), relative to the largest score"],
            header: ["task", "shared rows", "EAP: whole", "EAP: continued", "EAP-IG: whole", "EAP-IG: continued",
                     "patched run: whole", "patched run: continued", "engine: whole", "engine: continued", "max |Δscore|"])
        for task in tasks {
            let generated = try TaskRegistry.located().generate(task, count: count, seed: 0, tokenizer: model.tokenizer!)
            let pairs = PairBatch(generated.tokenized), metric = generated.metric
            let rows = pairs.clean.reduce(0) { $0 + $1.count }
            let shared = pairs.sharedPrefixLengths.reduce(0, +)
            var eap: [Bool: Double] = [:], ig: [Bool: Double] = [:], patched: [Bool: Double] = [:], engine: [Bool: Double] = [:]
            var scores: [Bool: [Float]] = [:]
            func keep(_ best: inout [Bool: Double], _ key: Bool, _ seconds: Double) { best[key] = min(best[key] ?? .infinity, seconds) }
            func seconds(_ p: EdgeAttribution.Profile) -> Double { p.forward + p.backward + p.contraction }
            for _ in 0..<context.repeats {
                for reuses in [true, false] {
                    let profile = EdgeAttribution.Profile()
                    scores[reuses] = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric, reusesSharedPrefixes: reuses,
                                                                profile: profile)
                    keep(&eap, reuses, seconds(profile))
                    let igProfile = EdgeAttribution.Profile()
                    _ = try EdgeAttribution.scores(model: model, pairs: pairs, metric: metric, integratedGradientSteps: igSteps,
                                                   reusesSharedPrefixes: reuses, profile: igProfile)
                    keep(&ig, reuses, seconds(igProfile))
                    let top = scores[true]!.indices.sorted { abs(scores[true]![$0]) > abs(scores[true]![$1]) }.prefix(circuitEdges)
                    var mask = EdgeMask(graph: model.graph, value: 1)
                    for e in top { mask.alpha[e] = 0 }
                    let built = Date()
                    let patching = try PatchingEngine(model: model, clean: Array(pairs.clean.prefix(enginePairs)),
                                                      corrupt: Array(pairs.corrupt.prefix(enginePairs)), reusesSharedPrefixes: reuses)
                    keep(&engine, reuses, Date().timeIntervalSince(built))
                    _ = patching.run(mask)  // allocates the run's buffers
                    let started = Date()
                    for _ in 0..<patchedRuns { _ = patching.run(mask) }
                    keep(&patched, reuses, Date().timeIntervalSince(started) / Double(patchedRuns))
                }
            }
            let largest = scores[false]!.map { abs($0) }.max() ?? 1
            let difference = zip(scores[true]!, scores[false]!).map { abs($0 - $1) }.max() ?? 0
            func both(_ best: [Bool: Double]) -> [String] { ["\(format(best[false], 2)) s", "\(format(best[true], 2)) s"] }
            table.rows.append([task, "\(shared) of \(rows) (\(format(100 * Double(shared) / Double(rows), 0)) %)"]
                              + both(eap) + both(ig) + both(patched) + both(engine) + [String(format: "%.1e", difference / largest)])
            progress("prefix: \(task) done")
            try table.write("prefix", to: context.resultsDirectory)
        }
    }
}

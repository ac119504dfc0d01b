import Circuits
import Foundation
import Kernels
import Tasks
import Transformer

/// Shared prefixes: EAP on each task's pairs with the rows before each pair's first differing token
/// left out of the contraction (their sender differences are exactly zero) and, in the same run,
/// with every row contracted.
enum PrefixBenchmark {
    static func run(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let count = Int(context.option("--pairs") ?? "100") ?? 100
        let tasks = context.option("--task").map { [$0] } ?? ["ioi", "greater-than", "induction"]
        var table = ResultsTable(
            title: "Shared prefixes: EAP with the identical rows skipped (SmolLM2-135M-Instruct)",
            command: context.command,
            notes: ["\(count) pairs (seed 0) per task, resample ablation, the task's metric; EAP's forward, backward and contraction seconds (best of \(context.repeats), the two settings interleaved in one process)",
                    "identical rows: rows before each pair's first differing token, where the clean and corrupted runs agree exactly (a test checks it bitwise), so their differences contribute exactly 0",
                    "the clean and corrupted forward passes still run every row; reusing the clean run's prefix in the corrupted run is not done"],
            header: ["task", "identical rows", "contraction: all rows", "contraction: skipped", "EAP total: all rows", "EAP total: skipped", "max |Δscore|"])
        for task in tasks {
            let generated = try TaskRegistry.located().generate(task, count: count, seed: 0, tokenizer: model.tokenizer!)
            let pairs = PairBatch(generated.tokenized)
            let rows = pairs.clean.reduce(0) { $0 + $1.count }
            let layout = SequenceLayout(lengths: pairs.clean.map(\.count))
            let differing = EdgeAttribution.differingRows(clean: pairs.clean, corrupt: pairs.corrupt, layout: layout).reduce(0) { $0 + $1.count }
            var best: [Bool: EdgeAttribution.Profile] = [:], scores: [Bool: [Float]] = [:]
            for _ in 0..<context.repeats {
                for skips in [true, false] {
                    let profile = EdgeAttribution.Profile()
                    scores[skips] = try EdgeAttribution.scores(model: model, pairs: pairs, metric: generated.metric, skipsSharedPrefixes: skips,
                                                               profile: profile)
                    let total = profile.forward + profile.backward + profile.contraction
                    if let kept = best[skips], kept.forward + kept.backward + kept.contraction <= total { continue }
                    best[skips] = profile
                }
            }
            let difference = zip(scores[true]!, scores[false]!).map { abs($0 - $1) }.max() ?? 0
            func seconds(_ p: EdgeAttribution.Profile?) -> String { "\(format(p.map { $0.forward + $0.backward + $0.contraction }, 2)) s" }
            table.rows.append([task, "\(rows - differing) of \(rows) (\(format(100 * Double(rows - differing) / Double(rows), 0)) %)",
                               "\(format(best[false]?.contraction, 2)) s", "\(format(best[true]?.contraction, 2)) s",
                               seconds(best[false]), seconds(best[true]), String(format: "%.1e", difference)])
            progress("prefix: \(task) done")
            try table.write("prefix", to: context.resultsDirectory)
        }
    }
}

import Circuits
import Foundation
import Kernels
import Tasks
import Transformer

/// EAP and EAP-IG over 100 IOI pairs on SmolLM2: time and peak memory next to the PyTorch baseline,
/// and agreement of the two implementations' scores.
enum EAPBenchmark {
    static func run(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let pairs = try context.pairs(task: "ioi", model: model)
        let pairsFile = try context.writePairsJSON(pairs)
        var table = ResultsTable(
            title: "EAP and EAP-IG: 100 IOI pairs on SmolLM2-135M-Instruct (123,211 edges)", command: context.command,
            notes: ["metric logit_diff, resample ablation, best of \(context.repeats) runs; peak RSS is the high-water mark during the runs, model weights included",
                    "score agreement: Pearson r and max |Δ| / max |score| between the two implementations' scores of every edge"],
            header: ["method", "CircuitKit s", "PyTorch s", "speed-up", "CircuitKit peak", "PyTorch peak", "forward / backward / contraction s",
                     "score agreement", "work GFLOP", "floor s"])
        let work = AttributionWork(config: model.config, lengths: pairs.clean.map(\.count))
        let rate = try bestGemmRate(context)
        table.notes.append("work: the products of matrices (projections, attention, the per-receiver gradient projections, the contraction) "
                           + "that computing these scores takes, counted from the model's shapes and the \(pairs.clean.joined().count) tokens "
                           + "of each side; floor: that work at the best GEMM rate measured in this run (\(rate.source): "
                           + "\(format(rate.gflops, 1)) GFLOPS), a lower bound on the time of any float32 implementation doing it on this machine")
        for (name, steps) in [("eap", nil), ("eap-ig", Optional(5))] as [(String, Int?)] {
            var scores: [Float] = []
            let profile = EdgeAttribution.Profile()
            let (timing, peak) = try PeakMemory.measure {
                try time(repeats: context.repeats, warmup: 0) {
                    let p = EdgeAttribution.Profile()
                    scores = try EdgeAttribution.scores(model: model, pairs: pairs, metric: .logitDiff, integratedGradientSteps: steps, profile: p)
                    if profile.forward == 0 || p.forward + p.backward + p.contraction < profile.forward + profile.backward + profile.contraction {
                        (profile.forward, profile.backward, profile.contraction) = (p.forward, p.backward, p.contraction)
                    }
                }
            }
            progress(String(format: "CircuitKit %@: %.2f s", name, timing.best))
            var row = [name + (steps.map { " (\($0) steps)" } ?? ""), format(timing.best, 2), "—", "—", mebibytes(peak.map(Double.init)), "—",
                       "\(format(profile.forward, 2)) / \(format(profile.backward, 2)) / \(format(profile.contraction, 2))", "—",
                       format(work.total(steps: steps) / 1e9, 0), format(work.total(steps: steps) / (rate.gflops * 1e9), 2)]
            if context.runBaselines {
                let scoresURL = context.scratch.appendingPathComponent("torch-\(name).f32")
                var arguments = ["--model", try context.modelPath.path, "--pairs", pairsFile.path, "--method", name, "--metric", "logit_diff",
                                 "--threads", "\(Threading.workerCount)", "--repeats", "\(context.repeats)", "--warmup", "0",
                                 "--scores", scoresURL.path]
                if let steps { arguments += ["--steps", "\(steps)"] }
                switch context.baseline.run("torch_eap.py", arguments) {
                case .result(let json):
                    let best = number(json, "best_s")
                    row[2] = format(best, 2)
                    row[3] = best.map { format($0 / timing.best, 2) + "×" } ?? "—"
                    if let best {
                        table.notes.append("\(name): 3× the PyTorch baseline would be \(format(best / 3, 2)) s; the floor is "
                                           + "\(format(work.total(steps: steps) / (rate.gflops * 1e9), 2)) s")
                    }
                    row[5] = mebibytes(number(json, "compute_peak_rss_bytes"))
                    if let data = FileManager.default.contents(atPath: scoresURL.path), data.count == scores.count * 4 {
                        let theirs = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                        let scale = scores.map { abs($0) }.max() ?? 1
                        row[7] = String(format: "r = %.6f, %.1e", pearson(scores, theirs), Double(zip(scores, theirs).map { abs($0 - $1) }.max()! / scale))
                    }
                case .unavailable(let why):
                    table.notes.append("PyTorch \(name) not run: \(why)")
                }
            }
            table.rows.append(row)
        }
        try table.write("eap", to: context.resultsDirectory)
    }
}

/// The best GEMM rate this run measures at SmolLM2's MLP shape: CircuitKit's, numpy's or PyTorch's
/// (the baselines when they run).
private func bestGemmRate(_ context: BenchmarkContext) throws -> (gflops: Double, source: String) {
    let shape = GemmBenchmark.shapes[1]
    let name = "GEMM at \(shape.m) × \(shape.k) × \(shape.n)"
    var best = (gflops: GemmBenchmark.gflops(shape, repeats: 20), source: "CircuitKit's \(name)")
    if context.runBaselines, case .result(let json) = GemmBenchmark.baselineGflops(context, [shape], repeats: 20) {
        for (rate, who) in [(GemmBenchmark.numpyRates(json).first ?? nil, "numpy"), (GemmBenchmark.torchRates(json).first ?? nil, "PyTorch")] {
            if let rate, rate > best.gflops { best = (rate, "\(who)'s \(name)") }
        }
    }
    return best
}

/// Pearson correlation of two equal-length samples.
func pearson(_ x: [Float], _ y: [Float]) -> Double {
    let n = Double(x.count)
    let mx = x.reduce(0.0) { $0 + Double($1) } / n, my = y.reduce(0.0) { $0 + Double($1) } / n
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in 0..<x.count {
        let a = Double(x[i]) - mx, b = Double(y[i]) - my
        sxy += a * b
        sxx += a * a
        syy += b * b
    }
    return sxy / (sxx * syy).squareRoot()
}

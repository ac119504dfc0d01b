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

/// The best GEMM rate this run measures at SmolLM2's MLP shape: CircuitKit's, or numpy's when the baseline runs and is faster.
private func bestGemmRate(_ context: BenchmarkContext) throws -> (gflops: Double, source: String) {
    let (m, k, n) = (1024, 576, 1536)
    var rng = SeededRandom(seed: 1)
    let a = FloatBuffer((0..<(m * k)).map { _ in rng.nextFloat() - 0.5 }), b = FloatBuffer((0..<(n * k)).map { _ in rng.nextFloat() - 0.5 })
    let c = FloatBuffer(count: m * n)
    let timing = time(repeats: 20, warmup: 3) {
        gemm(c.pointer, ldc: n, a.pointer, lda: k, transposeA: false, b.pointer, ldb: k, transposeB: true, accumulate: false, m, n, k)
    }
    let ours = 2 * Double(m * n * k) / timing.best / 1e9
    guard context.runBaselines, case .result(let json) = context.baseline.run("numpy_gemm.py", ["--shapes", "\(m)x\(k)x\(n)", "--repeats", "20"]),
          let numpy = ((json["shapes"] as? [[String: Any]])?.first).flatMap({ number($0, "gflops") }), numpy > ours
    else { return (ours, "CircuitKit's GEMM at \(m) × \(k) × \(n)") }
    return (numpy, "numpy's GEMM at \(m) × \(k) × \(n)")
}

/// Floating-point operations of the matrix products an attribution run needs, from the model's shapes.
///
/// Counts each linear layer's forward product, the attention products (q·k and the weighted sum of
/// values per example), the input-gradient products of the backward pass including each attention
/// receiver's own projection (`3·heads` products of depth `headDim`), and the contraction of every
/// edge's sender difference with its receiver's gradient over all rows. Elementwise work (norms,
/// softmax, RoPE, activations) and the unembedding at the read-out rows are left out, so the count
/// is a lower bound.
struct AttributionWork {
    /// One forward pass over every prompt of one side.
    let forward: Double
    /// One backward pass producing every receiver's gradient.
    let backward: Double
    /// One backward pass producing only the input embedding's gradient (one fused q/k/v product per layer).
    let inputGradientBackward: Double
    /// One contraction of all edges.
    let contraction: Double

    init(config c: TransformerConfig, lengths: [Int]) {
        let rows = Double(lengths.reduce(0, +)), d = Double(c.dModel), layers = Double(c.layers)
        // Σ over examples of the causal score entries, times heads and head width: one attention product.
        let attention = lengths.reduce(0.0) { $0 + Double($1 * ($1 + 1) / 2) } * Double(c.heads * c.headDim) * 2
        let projections = 2 * d * Double(c.qkvWidth + c.mlpInWidth) + 2 * Double(c.qWidth) * d + 2 * Double(c.dMLP) * d
        forward = layers * (rows * projections + 2 * attention)
        let gradients = 2 * Double(c.dMLP) * d + 2 * Double(c.mlpInWidth) * d + 2 * Double(c.qWidth) * d + 2 * Double(3 * c.heads * c.headDim) * d
        backward = layers * (rows * gradients + 4 * attention)
        inputGradientBackward = backward - layers * rows * 2 * Double(3 * c.heads * c.headDim - c.qkvWidth) * d
        contraction = 2 * Double(CircuitGraph(config: c).edgeCount) * rows * d
    }

    /// EAP (`steps` nil): clean and corrupted forwards, one backward and contraction. EAP-IG: the same
    /// two forwards (the corrupted one is the first interpolation point), `steps − 1` more, and
    /// `steps` backwards and contractions.
    func total(steps: Int?) -> Double {
        let m = Double(steps ?? 1)
        return (1 + m) * forward + m * (backward + contraction)
    }
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

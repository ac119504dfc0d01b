import Foundation
import Kernels
import Transformer

/// Forward throughput and forward+backward time/memory on SmolLM2, next to HF transformers.
enum ModelBenchmarks {
    static let batch = 64, tokens = 16

    /// Seeded random token ids, `batch × tokens`.
    static func randomBatch(vocab: Int) -> [[Int]] {
        var rng = SeededRandom(seed: 0)
        return (0..<batch).map { _ in (0..<tokens).map { _ in rng.uniform(below: vocab) } }
    }

    /// Rounds of (CircuitKit, PyTorch baseline); each side's best over all rounds is reported, so a
    /// drift of the machine's speed between processes does not decide the comparison.
    static let rounds = 3

    /// Alternates `rounds` rounds of timing `ours` (best of the context's repeats, with its peak
    /// resident memory) and running `script` once per entry of `variants` (extra arguments); returns
    /// our best time and peak, each variant's best result (lowest `best_s`, highest peak), or nil
    /// with a note when it cannot run, and each variant's speed-up in every round it ran.
    private static func alternate(
        _ context: BenchmarkContext, _ script: String, variants: [[String]] = [[]], _ label: String, _ notes: inout [String],
        _ ours: () throws -> Void
    ) throws -> (best: Double, peak: Int?, theirs: [[String: Any]?], roundSpeedUps: [[Double]]) {
        var best = Double.infinity, peak: Int?
        var theirs: [[String: Any]?] = Array(repeating: nil, count: variants.count)
        var roundSpeedUps = [[Double]](repeating: [], count: variants.count)
        for round in 0..<rounds {
            let (timing, roundPeak) = try PeakMemory.measure { try time(repeats: context.repeats, ours) }
            best = min(best, timing.best)
            if let roundPeak { peak = max(peak ?? 0, roundPeak) }
            var line = "round \(round + 1): CircuitKit \(label) " + String(format: "%.4f s", timing.best)
            var roundNotes: [String] = []
            // A baseline runs every round unless it could not run in the first.
            for (v, extra) in variants.enumerated() where context.runBaselines && (round == 0 || theirs[v] != nil) {
                guard var json = try baseline(context, script, extra, round == 0 && v == 0, &roundNotes) else { continue }
                line += ", PyTorch\(extra.isEmpty ? "" : " " + extra.joined(separator: " ")) " + String(format: "%.4f s", number(json, "best_s") ?? .nan)
                if let theirRound = number(json, "best_s") { roundSpeedUps[v].append(theirRound / timing.best) }
                if let previous = theirs[v] {
                    json["best_s"] = min(number(json, "best_s") ?? .infinity, number(previous, "best_s") ?? .infinity)
                    json["compute_peak_rss_bytes"] = max(number(json, "compute_peak_rss_bytes") ?? 0,
                                                         number(previous, "compute_peak_rss_bytes") ?? 0)
                }
                theirs[v] = json
            }
            if round == 0 { notes += roundNotes }
            progress(line)
        }
        return (best, peak, theirs, roundSpeedUps)
    }

    /// "speed-up over PyTorch (what): 1.10× (rounds: 1.05×, 1.27×, 1.12×)": best against best, then
    /// each round's best against the baseline's best in the same round.
    static func speedUpNote(_ what: String, _ speedUp: Double, rounds: [Double]) -> String {
        "speed-up over PyTorch\(what.isEmpty ? "" : " (\(what))"): \(format(speedUp, 2))× (rounds: "
            + rounds.map { format($0, 2) + "×" }.joined(separator: ", ") + ")"
    }

    static func forward(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let input = randomBatch(vocab: model.config.vocabularySize)
        var notes = ["batch \(batch) × \(tokens) random tokens, logits at the last position; best of \(context.repeats) runs in each of "
                     + "\(rounds) alternating rounds of CircuitKit and PyTorch"]
        let (best, peak, results, roundSpeedUps) = try alternate(context, "torch_forward.py", "forward", &notes) { _ = try model.forward(input) }
        let theirs = results[0]
        let ours = Double(batch * tokens) / best
        var table = ResultsTable(title: "Forward pass, SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to fp32)", command: context.command,
                                 notes: notes, header: ["", "seconds", "tokens/s", "peak RSS during runs"])
        table.rows.append(["CircuitKit", format(best, 4), format(ours, 0), mebibytes(peak.map(Double.init))])
        if let theirs {
            table.rows.append(["PyTorch (HF transformers)", format(number(theirs, "best_s"), 4),
                               format(number(theirs, "best_s").map { Double(batch * tokens) / $0 }, 0),
                               mebibytes(number(theirs, "compute_peak_rss_bytes"))])
            if let theirBest = number(theirs, "best_s") { table.notes.append(speedUpNote("", theirBest / best, rounds: roundSpeedUps[0])) }
        }
        try table.write("forward", to: context.resultsDirectory)
    }

    static func backward(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let vocab = model.config.vocabularySize
        let input = randomBatch(vocab: vocab)
        // logit_diff between two fixed tokens, as the baseline does.
        let targets = MetricTargets(correct: Array(repeating: [5099], count: batch), incorrect: Array(repeating: [2322], count: batch))
        var receivers = 0
        var notes = ["batch \(batch) × \(tokens) random tokens; logit_diff at the last position; best of \(context.repeats) runs in each of "
                     + "\(rounds) alternating rounds of CircuitKit and PyTorch"]
        let (best, peak, theirs, roundSpeedUps) = try alternate(context, "torch_backward.py", variants: [[], ["--receivers"]], "forward+backward", &notes) {
            let pass = try model.forward(input, keepActivations: true)
            let dLogits = FloatBuffer(count: pass.logits.count)
            _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
            receivers = 0
            model.backward(pass, dLogits: dLogits.pointer) { if $0.firstRow == 0 { receivers += $0.receivers.count } }
        }
        notes.insert("CircuitKit computes the gradient at all \(receivers) receivers of the graph (each head's q/k/v input through its own norm); "
                     + "PyTorch computes either only the gradient of the input embeddings (HF transformers' model, weights frozen), or, "
                     + "with --receivers, the gradient at every receiver as well (torch_eap.py's functional model of the same weights, "
                     + "receiver gradients formed and dropped; its peak includes the HF model it is built from)", at: 1)
        let work = AttributionWork(config: model.config, lengths: input.map(\.count))
        notes.append("work: products of matrices each side's computation takes (linear layers, attention, and for every receiver "
                     + "gradient each attention receiver's own input projection), counted from the model's shapes; GFLOPS = work / seconds")
        var table = ResultsTable(title: "Forward + backward, SmolLM2-135M-Instruct", command: context.command, notes: notes,
                                 header: ["", "seconds", "peak RSS during runs", "work GFLOP", "GFLOPS"])
        let ours = work.forward + work.backward, autograd = work.forward + work.inputGradientBackward
        table.rows.append(["CircuitKit, gradient at every receiver", format(best, 4), mebibytes(peak.map(Double.init)),
                           format(ours / 1e9, 0), format(ours / best / 1e9, 0)])
        let baselines = [("PyTorch autograd, input-embedding gradient only (HF transformers)", "input gradient only", autograd),
                         ("PyTorch autograd, gradient at every receiver (torch_eap.py's model)", "every receiver", ours)]
        for (((name, short, theirWork), json), rounds) in zip(zip(baselines, theirs), roundSpeedUps) {
            guard let json, let theirBest = number(json, "best_s") else { continue }
            table.rows.append([name, format(theirBest, 4), mebibytes(number(json, "compute_peak_rss_bytes")), format(theirWork / 1e9, 0),
                               format(theirWork / theirBest / 1e9, 0)])
            table.notes.append(speedUpNote(short, theirBest / best, rounds: rounds))
        }
        try table.write("backward", to: context.resultsDirectory)
    }

    /// Runs a model baseline with the shared sizes; notes why when it cannot.
    private static func baseline(
        _ context: BenchmarkContext, _ script: String, _ extra: [String] = [], _ noteVersions: Bool, _ notes: inout [String]
    ) throws -> [String: Any]? {
        switch context.baseline.run(script, ["--model", try context.modelPath.path, "--batch", "\(batch)", "--tokens", "\(tokens)",
                                             "--threads", "\(Threading.workerCount)", "--repeats", "\(context.repeats)"] + extra) {
        case .result(let json):
            if noteVersions, let versions = json["versions"] as? [String: Any] {
                notes.append("baseline: " + versions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                             + ", \(Threading.workerCount) threads")
            }
            return json
        case .unavailable(let why):
            notes.append("PyTorch baseline not run: \(why)")
            return nil
        }
    }
}

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
    static let rounds = 2

    /// Alternates `rounds` rounds of timing `ours` (best of the context's repeats, with its peak
    /// resident memory) and running `script`; returns our best time and peak, and the baseline's best
    /// result (lowest `best_s`, highest peak), or nil with a note when it cannot run.
    private static func alternate(
        _ context: BenchmarkContext, _ script: String, _ label: String, _ notes: inout [String], _ ours: () throws -> Void
    ) throws -> (best: Double, peak: Int?, theirs: [String: Any]?) {
        var best = Double.infinity, peak: Int?, theirs: [String: Any]?
        for round in 0..<rounds {
            let (timing, roundPeak) = try PeakMemory.measure { try time(repeats: context.repeats, ours) }
            best = min(best, timing.best)
            if let roundPeak { peak = max(peak ?? 0, roundPeak) }
            var line = "round \(round + 1): CircuitKit \(label) " + String(format: "%.4f s", timing.best)
            // The baseline runs every round unless it could not run in the first.
            var roundNotes: [String] = []
            if context.runBaselines && (round == 0 || theirs != nil), var json = try baseline(context, script, &roundNotes) {
                line += String(format: ", PyTorch %.4f s", number(json, "best_s") ?? .nan)
                if let previous = theirs {
                    json["best_s"] = min(number(json, "best_s") ?? .infinity, number(previous, "best_s") ?? .infinity)
                    json["compute_peak_rss_bytes"] = max(number(json, "compute_peak_rss_bytes") ?? 0,
                                                         number(previous, "compute_peak_rss_bytes") ?? 0)
                }
                theirs = json
            }
            if round == 0 { notes += roundNotes }
            progress(line)
        }
        return (best, peak, theirs)
    }

    static func forward(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let input = randomBatch(vocab: model.config.vocabularySize)
        var notes = ["batch \(batch) × \(tokens) random tokens, logits at the last position; best of \(context.repeats) runs in each of "
                     + "\(rounds) alternating rounds of CircuitKit and PyTorch"]
        let (best, peak, theirs) = try alternate(context, "torch_forward.py", "forward", &notes) { _ = try model.forward(input) }
        let ours = Double(batch * tokens) / best
        var table = ResultsTable(title: "Forward pass, SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to fp32)", command: context.command,
                                 notes: notes, header: ["", "seconds", "tokens/s", "peak RSS during runs"])
        table.rows.append(["CircuitKit", format(best, 4), format(ours, 0), mebibytes(peak.map(Double.init))])
        if let theirs {
            table.rows.append(["PyTorch (HF transformers)", format(number(theirs, "best_s"), 4), format(number(theirs, "tokens_per_s"), 0),
                               mebibytes(number(theirs, "compute_peak_rss_bytes"))])
            if let theirBest = number(theirs, "best_s") { table.notes.append("speed-up over PyTorch: \(format(theirBest / best, 2))×") }
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
        let (best, peak, theirs) = try alternate(context, "torch_backward.py", "forward+backward", &notes) {
            let pass = try model.forward(input, keepActivations: true)
            let dLogits = FloatBuffer(count: pass.logits.count)
            _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
            receivers = 0
            model.backward(pass, dLogits: dLogits.pointer) { receivers += $0.receivers.count }
        }
        notes.insert("CircuitKit computes the gradient at all \(receivers) receivers of the graph (each head's q/k/v input through its own norm); "
                     + "PyTorch computes the gradient of the input embeddings with weights frozen", at: 1)
        let work = AttributionWork(config: model.config, lengths: input.map(\.count))
        notes.append("work: products of matrices each side's computation takes (linear layers, attention, and for CircuitKit each "
                     + "attention receiver's own input projection), counted from the model's shapes; GFLOPS = work / seconds")
        var table = ResultsTable(title: "Forward + backward, SmolLM2-135M-Instruct", command: context.command, notes: notes,
                                 header: ["", "seconds", "peak RSS during runs", "work GFLOP", "GFLOPS"])
        let ours = work.forward + work.backward, autograd = work.forward + work.inputGradientBackward
        table.rows.append(["CircuitKit", format(best, 4), mebibytes(peak.map(Double.init)), format(ours / 1e9, 0),
                           format(ours / best / 1e9, 0)])
        if let theirs {
            let theirBest = number(theirs, "best_s")
            table.rows.append(["PyTorch autograd (HF transformers)", format(theirBest, 4), mebibytes(number(theirs, "compute_peak_rss_bytes")),
                               format(autograd / 1e9, 0), format(theirBest.map { autograd / $0 / 1e9 }, 0)])
            if let theirBest { table.notes.append("speed-up over PyTorch: \(format(theirBest / best, 2))×") }
        }
        try table.write("backward", to: context.resultsDirectory)
    }

    /// Runs a model baseline with the shared sizes; notes why when it cannot.
    private static func baseline(_ context: BenchmarkContext, _ script: String, _ notes: inout [String]) throws -> [String: Any]? {
        switch context.baseline.run(script, ["--model", try context.modelPath.path, "--batch", "\(batch)", "--tokens", "\(tokens)",
                                             "--threads", "\(Threading.workerCount)", "--repeats", "\(context.repeats)"]) {
        case .result(let json):
            if let versions = json["versions"] as? [String: Any] {
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

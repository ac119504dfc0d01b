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

    static func forward(_ context: BenchmarkContext) throws {
        let model = try context.model()
        let input = randomBatch(vocab: model.config.vocabularySize)
        let (timing, peak) = try PeakMemory.measure { try time(repeats: context.repeats) { _ = try model.forward(input) } }
        let ours = Double(batch * tokens) / timing.best
        progress(String(format: "CircuitKit forward: %.4f s, %.0f tokens/s", timing.best, ours))
        var notes = ["batch \(batch) × \(tokens) random tokens, logits at the last position, best of \(context.repeats)"]
        let theirs = context.runBaselines
            ? try baseline(context, "torch_forward.py", &notes) : nil
        var table = ResultsTable(title: "Forward pass, SmolLM2-135M-Instruct (Q4_1 GGUF dequantized to fp32)", command: context.command,
                                 notes: notes, header: ["", "seconds", "tokens/s", "peak RSS during runs"])
        table.rows.append(["CircuitKit", format(timing.best, 4), format(ours, 0), mebibytes(peak.map(Double.init))])
        if let theirs {
            table.rows.append(["PyTorch (HF transformers)", format(number(theirs, "best_s"), 4), format(number(theirs, "tokens_per_s"), 0),
                               mebibytes(number(theirs, "compute_peak_rss_bytes"))])
            if let best = number(theirs, "best_s") { table.notes.append("speed-up over PyTorch: \(format(best / timing.best, 2))×") }
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
        let (timing, peak) = try PeakMemory.measure {
            try time(repeats: context.repeats) {
                let pass = try model.forward(input, keepActivations: true)
                let dLogits = FloatBuffer(count: pass.logits.count)
                _ = Metric.logitDiff.evaluate(logits: pass.logits.pointer, vocab: vocab, targets: targets, gradient: dLogits.pointer)
                receivers = 0
                model.backward(pass, dLogits: dLogits.pointer) { receivers += $0.receivers.count }
            }
        }
        progress(String(format: "CircuitKit forward+backward: %.4f s", timing.best))
        var notes = [
            "batch \(batch) × \(tokens) random tokens; logit_diff at the last position; best of \(context.repeats)",
            "CircuitKit computes the gradient at all \(receivers) receivers of the graph (each head's q/k/v input through its own norm); "
                + "PyTorch computes the gradient of the input embeddings with weights frozen",
        ]
        let theirs = context.runBaselines ? try baseline(context, "torch_backward.py", &notes) : nil
        let work = AttributionWork(config: model.config, lengths: input.map(\.count))
        notes.append("work: products of matrices each side's computation takes (linear layers, attention, and for CircuitKit each "
                     + "attention receiver's own input projection), counted from the model's shapes; GFLOPS = work / seconds")
        var table = ResultsTable(title: "Forward + backward, SmolLM2-135M-Instruct", command: context.command, notes: notes,
                                 header: ["", "seconds", "peak RSS during runs", "work GFLOP", "GFLOPS"])
        let ours = work.forward + work.backward, autograd = work.forward + work.inputGradientBackward
        table.rows.append(["CircuitKit", format(timing.best, 4), mebibytes(peak.map(Double.init)), format(ours / 1e9, 0),
                           format(ours / timing.best / 1e9, 0)])
        if let theirs {
            let best = number(theirs, "best_s")
            table.rows.append(["PyTorch autograd (HF transformers)", format(best, 4), mebibytes(number(theirs, "compute_peak_rss_bytes")),
                               format(autograd / 1e9, 0), format(best.map { autograd / $0 / 1e9 }, 0)])
            if let best = number(theirs, "best_s") { table.notes.append("speed-up over PyTorch: \(format(best / timing.best, 2))×") }
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

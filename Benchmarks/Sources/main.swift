import Circuits
import Foundation
import Kernels
import Tasks
import Transformer

/// Shared settings and lazily loaded inputs of one `benchmarks` invocation.
final class BenchmarkContext {
    let command: String
    let repeats: Int
    let runBaselines: Bool
    let baseline: Baseline
    let resultsDirectory: URL
    let modelReference: ModelReference
    /// Scratch folder for files handed to the baselines.
    let scratch: URL
    private var loaded: TransformerModel?
    private let options: [String: String]

    init(arguments: [String]) throws {
        var options: [String: String] = [:]
        var flags = Set<String>()
        var i = 1
        while i < arguments.count {
            let a = arguments[i]
            if ["--no-baseline"].contains(a) { flags.insert(a) } else if a.hasPrefix("--"), i + 1 < arguments.count {
                options[a] = arguments[i + 1]
                i += 1
            } else { throw BenchmarkError("unexpected argument '\(a)'") }
            i += 1
        }
        self.options = options
        command = "swift run -c release benchmarks " + arguments.joined(separator: " ")
        repeats = Int(options["--repeats"] ?? "3") ?? 3
        runBaselines = !flags.contains("--no-baseline")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        baseline = Baseline(python: options["--python"] ?? ProcessInfo.processInfo.environment["CIRCUITKIT_PYTHON"] ?? "python3",
                            directory: root.appendingPathComponent("baselines"))
        resultsDirectory = URL(fileURLWithPath: options["--out"] ?? root.appendingPathComponent("results").path)
        modelReference = ModelReference(options["--model"])
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("circuitkit-bench-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    /// The value of a benchmark-specific option such as `--task`.
    func option(_ name: String) -> String? { options[name] }

    /// The model file or directory (fetching the default model when needed).
    var modelPath: URL { get throws { try modelReference.resolve(progress: progress) } }

    /// The model, loaded once.
    func model() throws -> TransformerModel {
        if let loaded { return loaded }
        let model = try modelReference.load(progress: progress)
        loaded = model
        return model
    }

    /// 100 pairs of a built-in task (seed 0), tokenized for `model`.
    func pairs(task: String, model: TransformerModel, count: Int = 100) throws -> PairBatch {
        PairBatch(try TaskRegistry.located().generate(task, count: count, seed: 0, tokenizer: model.tokenizer!).tokenized)
    }

    /// Writes token-id pairs as the PyTorch baselines read them.
    func writePairsJSON(_ pairs: PairBatch) throws -> URL {
        let url = scratch.appendingPathComponent("pairs-\(UUID().uuidString).json")
        let object: [String: Any] = ["clean": pairs.clean, "corrupt": pairs.corrupt, "correct": pairs.correct, "incorrect": pairs.incorrect]
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let benchmarks: [(String, String, (BenchmarkContext) throws -> Void)] = [
    ("gemm", "GEMM GFLOPS at SmolLM2's shapes next to numpy and PyTorch", GemmBenchmark.run),
    ("forward", "forward tokens/s (batch 64 × 16) next to PyTorch", ModelBenchmarks.forward),
    ("backward", "forward+backward time and peak memory next to PyTorch autograd", ModelBenchmarks.backward),
    ("eap", "EAP and EAP-IG on 100 IOI pairs: time, memory, agreement with PyTorch", EAPBenchmark.run),
    ("circuits", "each method's circuit at the task's edge budget: faithfulness on its pairs and fresh pairs, CPR/CMD, time (--task T, --edges N, --pairs N, --search-steps N, --candidates K, --prune-steps N, --prune-loss kl|metric, --methods a,b, --curves off)", CircuitsBenchmark.run),
    ("pipeline", "discover's whole pipeline against its scoring time (EAP, EAP-IG), runs shared or run again (--pairs N)", PipelineBenchmark.run),
    ("prefix", "EAP, EAP-IG and patched runs continuing from each pair's shared prefix, next to whole prompts, per task (--task T, --pairs N)", PrefixBenchmark.run),
    ("memory", "peak memory of discover per method at 100 and 1000 IOI pairs, caches of the whole batch or within a budget (--methods, --pairs a,b, --budget GiB, --chunks, --limit s)", MemoryBenchmark.run),
    ("acdc", "ACDC variants (serial/grouped/attributed trials, current/clean reference, nodes first) at τ from faithfulness floors: edges, faithfulness on its pairs and fresh pairs, passes, time (--task T, --pairs N, --floors a,b, --variants grouped-clean,serial-current,attributed-current-nodes,…)", ACDCBenchmark.run),
    ("attribution", "EAP/EAP-IG vs exact patching and faithfulness curves with ACDC (--task T, --exact-top N, --exact-random N, --acdc-pairs N, --taus a,b,c)", AttributionBenchmark.run),
]

let usage = """
    usage: swift run -c release benchmarks <name>|all [--repeats N] [--model M] [--python PY] [--no-baseline] [--out DIR]

    benchmarks:
    \(benchmarks.map { "  \($0.0.padding(toLength: 12, withPad: " ", startingAt: 0))\($0.1)" }.joined(separator: "\n"))

    Results tables go to Benchmarks/results/<name>.md. Baselines run with --python, $CIRCUITKIT_PYTHON or python3
    (see Benchmarks/README.md for the packages they need).
    """

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, name != "--help", name != "-h" else {
    print(usage)
    exit(arguments.isEmpty ? 2 : 0)
}
if arguments.contains("--help") || arguments.contains("-h") {
    print(usage)
    exit(0)
}
let selected = name == "all" ? benchmarks : benchmarks.filter { $0.0 == name }
guard !selected.isEmpty else {
    FileHandle.standardError.write(Data("benchmarks: unknown benchmark '\(name)'\n\n\(usage)\n".utf8))
    exit(2)
}
do {
    let context = try BenchmarkContext(arguments: arguments)
    defer { try? FileManager.default.removeItem(at: context.scratch) }
    for (benchmark, _, body) in selected {
        progress("== \(benchmark)")
        try body(context)
    }
} catch {
    FileHandle.standardError.write(Data("benchmarks: error: \(error)\n".utf8))
    exit(1)
}

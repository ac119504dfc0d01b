import Foundation
import Kernels

/// GEMM throughput at SmolLM2's shapes next to numpy's and PyTorch's matmul in the same run.
enum GemmBenchmark {
    /// `(M, K, N)` of `C[M, N] = A[M, K]·B[N, K]ᵀ`.
    typealias Shape = (m: Int, k: Int, n: Int)

    static let shapes: [Shape] = [(1024, 576, 576), (1024, 576, 1536), (1024, 1536, 576)]

    /// Rounds of (CircuitKit, baseline process); each side's best over all rounds is reported, so a
    /// drift of the machine's speed between the two processes does not decide the comparison.
    static let rounds = 3

    static func run(_ context: BenchmarkContext) throws {
        var ours = [Double](repeating: 0, count: shapes.count)
        var theirs: [Double?] = Array(repeating: nil, count: shapes.count)
        var torch: [Double?] = Array(repeating: nil, count: shapes.count)
        var notes = ["C = A·Bᵀ in float32 (A [M,K] activations, B [N,K] weights), best of \(context.repeats * 4) runs, "
                     + "alternating \(rounds) rounds of CircuitKit and the baselines (numpy, then PyTorch in the same process)"]
        for round in 0..<rounds {
            for (i, shape) in shapes.enumerated() { ours[i] = max(ours[i], gflops(shape, repeats: context.repeats * 4)) }
            guard context.runBaselines else { break }
            switch baselineGflops(context, shapes, repeats: context.repeats * 4) {
            case .result(let json):
                for (i, g) in numpyRates(json).enumerated() where i < shapes.count {
                    if let g { theirs[i] = max(theirs[i] ?? 0, g) }
                }
                for (i, g) in torchRates(json).enumerated() where i < shapes.count {
                    if let g { torch[i] = max(torch[i] ?? 0, g) }
                }
                if round == 0 {
                    if let runtime = json["blas_runtime"] as? [String: Any], let core = runtime["corename"] as? String {
                        notes.append("numpy BLAS: OpenBLAS, \(core) kernels")
                    }
                    notes.append("PyTorch BLAS: " + (json["torch_blas"] as? String ?? "PyTorch not installed"))
                }
            case .unavailable(let why):
                notes.append("numpy baseline not run: \(why)")
            }
            progress("round \(round + 1): CircuitKit " + ours.map { format($0, 1) }.joined(separator: ", ")
                     + "; numpy " + theirs.map { format($0, 1) }.joined(separator: ", ")
                     + "; PyTorch " + torch.map { format($0, 1) }.joined(separator: ", "))
            if theirs.contains(where: { $0 == nil }) { break }
        }
        var table = ResultsTable(title: "GEMM throughput (SmolLM2 shapes)", command: context.command, notes: notes,
                                 header: ["M × K × N", "CircuitKit GFLOPS", "numpy GFLOPS", "PyTorch GFLOPS", "CircuitKit / numpy",
                                          "CircuitKit / PyTorch"])
        for (i, (m, k, n)) in shapes.enumerated() {
            table.rows.append(["\(m) × \(k) × \(n)", format(ours[i], 1), format(theirs[i], 1), format(torch[i], 1),
                               theirs[i].map { format(ours[i] / $0, 2) } ?? "—", torch[i].map { format(ours[i] / $0, 2) } ?? "—"])
        }
        try table.write("gemm", to: context.resultsDirectory)
    }

    /// CircuitKit's best rate at `shape` over `repeats` runs on seeded random inputs, in GFLOPS.
    static func gflops(_ shape: Shape, repeats: Int) -> Double {
        let (m, k, n) = shape
        var rng = SeededRandom(seed: 1)
        let a = FloatBuffer((0..<(m * k)).map { _ in rng.nextFloat() - 0.5 })
        let b = FloatBuffer((0..<(n * k)).map { _ in rng.nextFloat() - 0.5 })
        let c = FloatBuffer(count: m * n)
        let timing = time(repeats: repeats, warmup: 3) {
            gemm(c.pointer, ldc: n, a.pointer, lda: k, transposeA: false, b.pointer, ldb: k, transposeB: true,
                 accumulate: false, m, n, k)
        }
        return 2 * Double(m * n * k) / timing.best / 1e9
    }

    /// Runs the numpy (and PyTorch, when installed) baseline at `shapes`, best of `repeats` each.
    static func baselineGflops(_ context: BenchmarkContext, _ shapes: [Shape], repeats: Int) -> Baseline.Outcome {
        context.baseline.run("numpy_gemm.py", ["--shapes", shapes.map { "\($0.m)x\($0.k)x\($0.n)" }.joined(separator: ","),
                                               "--repeats", "\(repeats)"])
    }

    /// The per-shape GFLOPS of a numpy baseline result, in the order of its shapes.
    static func numpyRates(_ json: [String: Any]) -> [Double?] {
        (json["shapes"] as? [[String: Any]] ?? []).map { number($0, "gflops") }
    }

    /// The per-shape GFLOPS of PyTorch's matmul in a baseline result (nil where PyTorch is not installed).
    static func torchRates(_ json: [String: Any]) -> [Double?] {
        (json["shapes"] as? [[String: Any]] ?? []).map { number($0, "torch_gflops") }
    }
}

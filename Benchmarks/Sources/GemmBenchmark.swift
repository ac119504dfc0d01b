import Foundation
import Kernels

/// GEMM throughput at SmolLM2's shapes next to numpy's matmul in the same run.
enum GemmBenchmark {
    static let shapes = [(1024, 576, 576), (1024, 576, 1536), (1024, 1536, 576)]

    static func run(_ context: BenchmarkContext) throws {
        var ours: [Double] = []
        for (m, k, n) in shapes {
            var rng = SeededRandom(seed: 1)
            let a = FloatBuffer((0..<(m * k)).map { _ in rng.nextFloat() - 0.5 })
            let b = FloatBuffer((0..<(n * k)).map { _ in rng.nextFloat() - 0.5 })
            let c = FloatBuffer(count: m * n)
            let timing = time(repeats: context.repeats * 4, warmup: 3) {
                gemm(c.pointer, ldc: n, a.pointer, lda: k, transposeA: false, b.pointer, ldb: k, transposeB: true,
                     accumulate: false, m, n, k)
            }
            ours.append(2 * Double(m * n * k) / timing.best / 1e9)
            progress(String(format: "CircuitKit %dx%dx%d: %.1f GFLOPS", m, k, n, ours.last!))
        }
        var theirs: [Double?] = Array(repeating: nil, count: shapes.count)
        var notes = ["C = A·Bᵀ in float32 (A [M,K] activations, B [N,K] weights), best of \(context.repeats * 4) runs each"]
        if context.runBaselines {
            let spec = shapes.map { "\($0.0)x\($0.1)x\($0.2)" }.joined(separator: ",")
            switch context.baseline.run("numpy_gemm.py", ["--shapes", spec, "--repeats", "\(context.repeats * 4)"]) {
            case .result(let json):
                let list = json["shapes"] as? [[String: Any]] ?? []
                theirs = list.map { number($0, "gflops") }
                if let blas = json["blas"] as? String { notes.append("numpy BLAS: \(blas)") }
            case .unavailable(let why):
                notes.append("numpy baseline not run: \(why)")
            }
        }
        var table = ResultsTable(title: "GEMM throughput (SmolLM2 shapes)", command: context.command, notes: notes,
                                 header: ["M × K × N", "CircuitKit GFLOPS", "numpy GFLOPS", "CircuitKit / numpy"])
        for (i, (m, k, n)) in shapes.enumerated() {
            table.rows.append(["\(m) × \(k) × \(n)", format(ours[i], 1), format(theirs[i], 1),
                               theirs[i].map { format(ours[i] / $0, 2) } ?? "—"])
        }
        try table.write("gemm", to: context.resultsDirectory)
    }
}

import Foundation
import Kernels

/// GEMM throughput at SmolLM2's shapes next to numpy's matmul in the same run.
enum GemmBenchmark {
    static let shapes = [(1024, 576, 576), (1024, 576, 1536), (1024, 1536, 576)]

    /// Rounds of (CircuitKit, numpy); each side's best over all rounds is reported, so a drift of the
    /// machine's speed between the two processes does not decide the comparison.
    static let rounds = 3

    static func run(_ context: BenchmarkContext) throws {
        var ours = [Double](repeating: 0, count: shapes.count)
        var theirs: [Double?] = Array(repeating: nil, count: shapes.count)
        var notes = ["C = A·Bᵀ in float32 (A [M,K] activations, B [N,K] weights), best of \(context.repeats * 4) runs, "
                     + "alternating \(rounds) rounds of CircuitKit and numpy"]
        let inputs = shapes.map { (m, k, n) -> (FloatBuffer, FloatBuffer, FloatBuffer) in
            var rng = SeededRandom(seed: 1)
            return (FloatBuffer((0..<(m * k)).map { _ in rng.nextFloat() - 0.5 }),
                    FloatBuffer((0..<(n * k)).map { _ in rng.nextFloat() - 0.5 }), FloatBuffer(count: m * n))
        }
        for round in 0..<rounds {
            for (i, (m, k, n)) in shapes.enumerated() {
                let (a, b, c) = inputs[i]
                let timing = time(repeats: context.repeats * 4, warmup: 3) {
                    gemm(c.pointer, ldc: n, a.pointer, lda: k, transposeA: false, b.pointer, ldb: k, transposeB: true,
                         accumulate: false, m, n, k)
                }
                ours[i] = max(ours[i], 2 * Double(m * n * k) / timing.best / 1e9)
            }
            guard context.runBaselines else { break }
            let spec = shapes.map { "\($0.0)x\($0.1)x\($0.2)" }.joined(separator: ",")
            switch context.baseline.run("numpy_gemm.py", ["--shapes", spec, "--repeats", "\(context.repeats * 4)"]) {
            case .result(let json):
                let list = json["shapes"] as? [[String: Any]] ?? []
                for (i, entry) in list.enumerated() where i < shapes.count {
                    if let g = number(entry, "gflops") { theirs[i] = max(theirs[i] ?? 0, g) }
                }
                if round == 0, let blas = json["blas"] as? String { notes.append("numpy BLAS: \(blas)") }
            case .unavailable(let why):
                notes.append("numpy baseline not run: \(why)")
            }
            progress("round \(round + 1): CircuitKit " + ours.map { format($0, 1) }.joined(separator: ", ")
                     + "; numpy " + theirs.map { format($0, 1) }.joined(separator: ", "))
            if theirs.contains(where: { $0 == nil }) { break }
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

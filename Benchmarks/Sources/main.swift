import Dispatch
import Kernels

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
for (m, k, n) in [(1024, 576, 576), (1024, 576, 1536), (1024, 1536, 576), (100, 576, 49152), (1500, 64, 576)] {
    let a = FloatBuffer(count: m * k), b = FloatBuffer(count: n * k), c = FloatBuffer(count: m * n)
    for i in 0..<a.count { a[i] = Float.random(in: -1...1) }
    for i in 0..<b.count { b[i] = Float.random(in: -1...1) }
    var best = 1e9
    for _ in 0..<20 {
        let t = now()
        gemm(c.pointer, ldc: n, a.pointer, lda: k, transposeA: false, b.pointer, ldb: k, transposeB: true, accumulate: false, m, n, k)
        best = min(best, now() - t)
    }
    print(m, k, n, 2.0 * Double(m * n * k) / best / 1e9)
}

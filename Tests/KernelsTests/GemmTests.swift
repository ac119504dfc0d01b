import Kernels
import XCTest

/// The blocked SIMD `gemm` against the naive `gemmReference`, in all four transpose forms, overwriting
/// and accumulating, on awkward and round sizes, on sub-matrices, and down each internal path
/// (serial small products, threaded blocks, the depth split), with both micro-kernels.
final class GemmTests: XCTestCase {
    /// One product: `op(A)` is `m × k`, `op(B)` is `k × n`; every matrix row has `padding` extra floats.
    private struct Case: CustomStringConvertible {
        var m: Int, n: Int, k: Int
        var transposeA: Bool, transposeB: Bool, accumulate: Bool
        var padding = 0

        var description: String {
            "gemm m=\(m) n=\(n) k=\(k) A\(transposeA ? "ᵀ" : "")·B\(transposeB ? "ᵀ" : "") "
                + "accumulate=\(accumulate) padding=\(padding)"
        }
    }

    /// The value the padding of `C` holds; `gemm` must leave it alone.
    private let sentinel: Float = 1234.5

    /// A `rows × columns` matrix of uniform values stored `stride` floats per row, the padding NaN
    /// (so reading it poisons the result).
    private func matrix(_ rows: Int, _ columns: Int, stride: Int, _ rng: inout SeededRandom) -> FloatBuffer {
        let buffer = FloatBuffer(count: rows * stride)
        for r in 0..<rows {
            for c in 0..<stride { buffer[r * stride + c] = c < columns ? 2 * rng.nextFloat() - 1 : .nan }
        }
        return buffer
    }

    private func check(_ test: Case, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SeededRandom(seed: seed)
        let (m, n, k) = (test.m, test.n, test.k)
        let (aRows, aColumns) = test.transposeA ? (k, m) : (m, k)
        let (bRows, bColumns) = test.transposeB ? (n, k) : (k, n)
        let lda = aColumns + test.padding, ldb = bColumns + test.padding, ldc = n + test.padding
        let a = matrix(aRows, aColumns, stride: lda, &rng), b = matrix(bRows, bColumns, stride: ldb, &rng)
        // C's old values must be added when accumulating and ignored (even NaN) otherwise.
        let initial = FloatBuffer(count: m * ldc)
        for i in 0..<m {
            for j in 0..<ldc {
                initial[i * ldc + j] = j >= n ? sentinel : test.accumulate ? 2 * rng.nextFloat() - 1 : .nan
            }
        }
        let expected = FloatBuffer(initial.array)
        // Both register blockings, which must agree bit for bit (they sum in the same order).
        let results = GemmMicroKernel.allCases.map { kernel in
            let out = FloatBuffer(initial.array)
            gemm(out.pointer, ldc: ldc, a.pointer, lda: lda, transposeA: test.transposeA, b.pointer, ldb: ldb,
                 transposeB: test.transposeB, accumulate: test.accumulate, m, n, k, microKernel: kernel)
            return out
        }
        let actual = results[0]
        XCTAssertEqual(results[0].array.map(\.bitPattern), results[1].array.map(\.bitPattern), "\(test): wide and narrow kernels differ",
                       file: file, line: line)
        gemmReference(expected.pointer, ldc: ldc, a.pointer, lda: lda, transposeA: test.transposeA, b.pointer,
                      ldb: ldb, transposeB: test.transposeB, accumulate: test.accumulate, m, n, k)

        // Float32 error grows with the size of the summands: allow 2e-6 of ‖row i of op(A)‖·‖column j
        // of op(B)‖ (≥ Σ|a·b| by Cauchy–Schwarz) plus the old value; padding must be untouched.
        func aElement(_ i: Int, _ p: Int) -> Double { Double(test.transposeA ? a[p * lda + i] : a[i * lda + p]) }
        func bElement(_ p: Int, _ j: Int) -> Double { Double(test.transposeB ? b[j * ldb + p] : b[p * ldb + j]) }
        let rowNorms = (0..<m).map { i in (0..<k).reduce(0.0) { $0 + aElement(i, $1) * aElement(i, $1) }.squareRoot() }
        let columnNorms = (0..<n).map { j in (0..<k).reduce(0.0) { $0 + bElement($1, j) * bElement($1, j) }.squareRoot() }
        assertClose(actual.array, expected.doubles, tolerance: { index in
            let (i, j) = index.quotientAndRemainder(dividingBy: ldc)
            if j >= n { return 0 }
            let old = test.accumulate ? abs(Double(initial[index])) : 0
            return 2e-6 * (rowNorms[i] * columnNorms[j] + old) + 1e-30
        }, "\(test)", file: file, line: line)
    }

    private let forms = [(false, false), (false, true), (true, false), (true, true)]

    func testAllFormsOnSmallSizesTakeTheSerialPath() {
        // m·n·k < 65536 for all of these, so gemm runs single-threaded.
        let sizes = [1, 7, 33]
        var seed: UInt64 = 0
        for m in sizes {
            for n in sizes {
                for k in sizes {
                    for (transposeA, transposeB) in forms {
                        for accumulate in [false, true] {
                            seed += 1
                            check(Case(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                                       accumulate: accumulate, padding: Int(seed % 3) * 3), seed: seed)
                        }
                    }
                }
            }
        }
    }

    func testAwkwardLargeSizes() {
        // Several row blocks (≤ 96), depth blocks (≤ 200) and column panels (48), each with a ragged
        // edge; every form meets a product with a large dimension in each position.
        let cases = [
            Case(m: 1537, n: 33, k: 577, transposeA: false, transposeB: true, accumulate: false),
            Case(m: 33, n: 1537, k: 577, transposeA: false, transposeB: false, accumulate: true, padding: 5),
            Case(m: 577, n: 33, k: 1537, transposeA: true, transposeB: false, accumulate: false, padding: 1),
            Case(m: 577, n: 1537, k: 33, transposeA: true, transposeB: true, accumulate: true),
            Case(m: 7, n: 577, k: 1537, transposeA: false, transposeB: true, accumulate: true, padding: 3),
            Case(m: 1537, n: 7, k: 33, transposeA: true, transposeB: false, accumulate: false, padding: 2),
            Case(m: 1, n: 1537, k: 577, transposeA: false, transposeB: false, accumulate: false, padding: 7),
            Case(m: 1537, n: 1, k: 577, transposeA: true, transposeB: true, accumulate: true),
            Case(m: 577, n: 577, k: 7, transposeA: false, transposeB: true, accumulate: true, padding: 4),
            Case(m: 97, n: 33, k: 257, transposeA: true, transposeB: false, accumulate: true, padding: 1),
            Case(m: 577, n: 64, k: 577, transposeA: false, transposeB: false, accumulate: true, padding: 5),
        ]
        for (index, test) in cases.enumerated() { check(test, seed: 1000 + UInt64(index)) }
    }

    func testRoundSizes() {
        var cases = forms.map { Case(m: 64, n: 64, k: 64, transposeA: $0.0, transposeB: $0.1, accumulate: false) }
        cases += [
            Case(m: 256, n: 256, k: 256, transposeA: false, transposeB: true, accumulate: false),
            Case(m: 256, n: 256, k: 256, transposeA: true, transposeB: false, accumulate: true, padding: 16),
            Case(m: 1024, n: 64, k: 256, transposeA: false, transposeB: false, accumulate: false),
            Case(m: 64, n: 1024, k: 256, transposeA: true, transposeB: true, accumulate: true),
        ]
        for (index, test) in cases.enumerated() { check(test, seed: 2000 + UInt64(index)) }
    }

    func testShallowRowMajorBIsReadInPlace() {
        // Depth ≤ 64 with B untransposed: full 48-column panels are read from B, the ragged last one packed.
        check(Case(m: 1024, n: 576, k: 64, transposeA: false, transposeB: false, accumulate: false), seed: 3100)
        check(Case(m: 97, n: 577, k: 64, transposeA: false, transposeB: false, accumulate: true, padding: 3), seed: 3101)
        check(Case(m: 64, n: 100, k: 37, transposeA: true, transposeB: false, accumulate: true, padding: 1), seed: 3102)
        // Depth 65: one block, packed.
        check(Case(m: 200, n: 96, k: 65, transposeA: false, transposeB: false, accumulate: false, padding: 2), seed: 3103)
    }

    func testOutputsWiderThanOnePackedColumnBlock() {
        // B is packed in equal column blocks of at most 768 columns (here 720, 720 and 645).
        check(Case(m: 33, n: 2085, k: 65, transposeA: true, transposeB: true, accumulate: true, padding: 3), seed: 3000)
        check(Case(m: 100, n: 2080, k: 7, transposeA: false, transposeB: true, accumulate: false), seed: 3001)
    }

    func testLongDepthProducts() {
        // EAP's contraction shape (A·Bᵀ, n ≤ 64, k ≥ 16384) runs as dot products along the depth in
        // 4096-deep blocks; the other forms meet the same depth in the blocked path (83 depth blocks).
        let k = 16_384 + 37
        check(Case(m: 27, n: 28, k: k, transposeA: false, transposeB: true, accumulate: false, padding: 3), seed: 4000)
        check(Case(m: 301, n: 61, k: k, transposeA: false, transposeB: true, accumulate: true, padding: 1), seed: 4001)
        check(Case(m: 19, n: 150, k: k, transposeA: true, transposeB: false, accumulate: true, padding: 1), seed: 4002)
        check(Case(m: 1, n: 7, k: k, transposeA: false, transposeB: false, accumulate: true), seed: 4003)
    }

    func testEmptyProducts() {
        let a = FloatBuffer([1, 2, 3]), b = FloatBuffer([4, 5, 6])
        // k = 0: C = 0, or unchanged when accumulating.
        let c = FloatBuffer([7, 8, 9, 10])
        gemm(c.pointer, ldc: 2, a.pointer, lda: 1, transposeA: false, b.pointer, ldb: 2, transposeB: false,
             accumulate: true, 2, 2, 0)
        XCTAssertEqual(c.array, [7, 8, 9, 10])
        gemm(c.pointer, ldc: 2, a.pointer, lda: 1, transposeA: false, b.pointer, ldb: 2, transposeB: false,
             accumulate: false, 2, 1, 0)
        XCTAssertEqual(c.array, [0, 8, 0, 10], "k = 0 clears the m × n block and nothing past its width")
        // m = 0 or n = 0: nothing is written.
        gemm(c.pointer, ldc: 2, a.pointer, lda: 1, transposeA: false, b.pointer, ldb: 2, transposeB: false,
             accumulate: false, 0, 2, 1)
        gemm(c.pointer, ldc: 2, a.pointer, lda: 1, transposeA: false, b.pointer, ldb: 2, transposeB: false,
             accumulate: false, 2, 0, 1)
        XCTAssertEqual(c.array, [0, 8, 0, 10])
    }

    /// `gemmSparseA` against `gemmReference` for a mostly-zero A, serial and split between the workers,
    /// overwriting and accumulating: rows of A that are all zeros leave C's row alone when accumulating
    /// (NaN stays NaN), and zero it when not.
    func testSparseAMatchesReference() {
        for (m, n, k) in [(5, 37, 9), (27, 4_800, 301)] {
            for accumulate in [false, true] {
                var rng = SeededRandom(seed: UInt64(m * 31 + n + (accumulate ? 1 : 0)))
                let lda = k + 3, ldb = n + 5, ldc = n + 2
                let a = FloatBuffer(count: m * lda), b = FloatBuffer(rng.uniformFloats(k * ldb))
                // Row 1 of A stays all zeros; the others get about one nonzero in ten.
                for i in 0..<m where i != 1 {
                    for p in 0..<k where rng.nextFloat() < 0.1 { a[i * lda + p] = 2 * rng.nextFloat() - 1 }
                }
                let initial = rng.uniformFloats(m * ldc)
                let out = FloatBuffer(initial), expected = FloatBuffer(initial)
                for j in 0..<n { out[ldc + j] = .nan }
                gemmSparseA(out.pointer, ldc: ldc, a.pointer, lda: lda, b.pointer, ldb: ldb, accumulate: accumulate, m, n, k)
                gemmReference(expected.pointer, ldc: ldc, a.pointer, lda: lda, transposeA: false, b.pointer, ldb: ldb, transposeB: false,
                              accumulate: accumulate, m, n, k)
                for i in 0..<m {
                    for j in 0..<ldc {
                        let label = "m=\(m) n=\(n) accumulate=\(accumulate) C[\(i), \(j)]"
                        if j >= n {
                            XCTAssertEqual(out[i * ldc + j], initial[i * ldc + j], label)
                        } else if i == 1 && accumulate {
                            XCTAssertTrue(out[i * ldc + j].isNaN, "\(label): a row of zeros must leave C alone")
                        } else {
                            XCTAssertEqual(out[i * ldc + j], expected[i * ldc + j], accuracy: 1e-5, label)
                        }
                    }
                }
            }
        }
        XCTAssertTrue(prefersSparseA(nonzeros: 10, of: 80))
        XCTAssertFalse(prefersSparseA(nonzeros: 11, of: 80))
    }
}

import Foundation
import Kernels
import XCTest

/// Log-softmax of one row in `Double`.
private func logSoftmaxRow(_ x: [Double]) -> [Double] {
    let m = x.max() ?? 0
    let logTotal = m + log(x.reduce(0) { $0 + exp($1 - m) })
    return x.map { $0 - logTotal }
}

/// Row-wise softmax and log-softmax against `Double`, stability with huge logits, and backward passes
/// against central differences.
final class SoftmaxTests: XCTestCase {
    private let rows = 3

    private func row(_ values: [Float], _ r: Int, _ columns: Int) -> [Double] {
        values[r * columns..<(r + 1) * columns].map(Double.init)
    }

    /// Rows of ordinary logits (σ = 3), then one offset by +1000 and one by −1000.
    private func logits(columns: Int, _ rng: inout SeededRandom) -> [Float] {
        rng.gaussianFloats(columns * rows, deviation: 3)
            + rng.gaussianFloats(columns, mean: 1000, deviation: 3) + rng.gaussianFloats(columns, mean: -1000, deviation: 3)
    }

    func testForwardMatchesDoubleIncludingHugeLogits() {
        for columns in awkwardSizes {
            var rng = SeededRandom(seed: 300 + UInt64(columns))
            let x = logits(columns: columns, &rng), allRows = rows + 2
            let inp = FloatBuffer(x), probs = FloatBuffer(count: x.count), logProbs = FloatBuffer(count: x.count)
            softmaxForward(probs.pointer, inp.pointer, allRows, columns)
            logSoftmaxForward(logProbs.pointer, inp.pointer, allRows, columns)
            let expected = (0..<allRows).flatMap { softmaxRow(row(x, $0, columns)) }
            let expectedLog = (0..<allRows).flatMap { logSoftmaxRow(row(x, $0, columns)) }
            assertClose(probs.array, expected, absolute: 1e-7, relative: 1e-5, "softmax, \(columns) columns")
            // Log-probabilities of logits near ±1000 carry Float's absolute rounding at that scale.
            assertClose(logProbs.array, expectedLog, tolerance: { i in
                1e-6 * (1 + abs(Double(x[i]))) + 1e-5 * abs(expectedLog[i])
            }, "logSoftmax, \(columns) columns")
            for r in 0..<allRows {
                let total = row(probs.array, r, columns).reduce(0, +)
                XCTAssertEqual(total, 1, accuracy: 1e-5, "softmax row \(r) sums to \(total), \(columns) columns")
            }
        }
    }

    func testExtremeRowsStayFinite() {
        // One row spanning ±1000 (exp would overflow without the max subtraction) and a row of ties.
        let x: [Float] = [1000, 0, -1000, 999, 5, 5, 5, 5]
        let inp = FloatBuffer(x), probs = FloatBuffer(count: 8), logProbs = FloatBuffer(count: 8)
        softmaxForward(probs.pointer, inp.pointer, 2, 4)
        logSoftmaxForward(logProbs.pointer, inp.pointer, 2, 4)
        let e = exp(-1.0)
        assertClose(probs.array, [1 / (1 + e), 0, 0, e / (1 + e), 0.25, 0.25, 0.25, 0.25], absolute: 1e-7,
                    "softmax of extreme and tied rows")
        let logZ = 1000 + log(1 + e)
        assertClose(logProbs.array, [1000 - logZ, -logZ, -1000 - logZ, 999 - logZ, log(0.25), log(0.25), log(0.25), log(0.25)],
                    absolute: 1e-4, "logSoftmax of extreme and tied rows")
    }

    func testMaskedLogitsGetZeroProbability() {
        // −∞ logits (masked entries) get probability 0 and log-probability −∞; the rest renormalize.
        let x: [Float] = [-.infinity, 0, 1, -.infinity]
        let inp = FloatBuffer(x), probs = FloatBuffer(count: 4), logProbs = FloatBuffer(count: 4)
        softmaxForward(probs.pointer, inp.pointer, 1, 4)
        logSoftmaxForward(logProbs.pointer, inp.pointer, 1, 4)
        let e = exp(1.0)
        assertClose(probs.array, [0, 1 / (1 + e), e / (1 + e), 0], absolute: 1e-7, "softmax with masked logits")
        XCTAssertEqual(logProbs[0], -.infinity)
        XCTAssertEqual(logProbs[3], -.infinity)
        assertClose([logProbs[1], logProbs[2]], [-log(1 + e), 1 - log(1 + e)], absolute: 1e-6, "logSoftmax with masked logits")

        // Their gradients are zero (finite) and the others follow the unmasked softmax.
        let dout = FloatBuffer([5, 1, -2, 7]), dSoftmax = FloatBuffer(count: 4), dLogSoftmax = FloatBuffer(count: 4)
        softmaxBackward(dSoftmax.pointer, dout.pointer, probs.pointer, 1, 4)
        logSoftmaxBackward(dLogSoftmax.pointer, dout.pointer, logProbs.pointer, 1, 4)
        let p1 = 1 / (1 + e), p2 = e / (1 + e), weighted = p1 * 1 + p2 * -2
        assertClose(dSoftmax.array, [0, p1 * (1 - weighted), p2 * (-2 - weighted), 0], absolute: 1e-6,
                    "softmax gradient with masked logits")
        // d/dx_i Σ_j dout_j·logp_j = dout_i − p_i·Σ dout over the whole row (masked dout included).
        assertClose(dLogSoftmax.array, [5, 1 - p1 * 11, -2 - p2 * 11, 7], absolute: 1e-5,
                    "log-softmax gradient with masked logits")
    }

    func testBackwardMatchesFiniteDifferencesAndAccumulates() {
        for columns in awkwardSizes {
            var rng = SeededRandom(seed: 400 + UInt64(columns))
            let x = logits(columns: columns, &rng), allRows = rows + 2
            let upstream = rng.gaussianFloats(x.count), previous = rng.gaussianFloats(x.count)
            let inp = FloatBuffer(x), dout = FloatBuffer(upstream)
            let probs = FloatBuffer(count: x.count), logProbs = FloatBuffer(count: x.count)
            softmaxForward(probs.pointer, inp.pointer, allRows, columns)
            logSoftmaxForward(logProbs.pointer, inp.pointer, allRows, columns)
            let dSoftmax = FloatBuffer(previous), dLogSoftmax = FloatBuffer(previous)
            softmaxBackward(dSoftmax.pointer, dout.pointer, probs.pointer, allRows, columns)
            logSoftmaxBackward(dLogSoftmax.pointer, dout.pointer, logProbs.pointer, allRows, columns)
            // Every coordinate for narrow rows; random directions for the 1537-wide ones.
            let directions = columns > 600 ? 4 : nil
            for r in 0..<allRows {
                let u = row(upstream, r, columns), before = row(previous, r, columns)
                let gradient = (0..<columns).map { Double(dSoftmax[r * columns + $0]) - before[$0] }
                assertGradient(gradient, of: { dotProduct(u, softmaxRow($0)) }, at: row(x, r, columns),
                               tolerance: 1e-4, directions: directions, rng: &rng,
                               "softmaxBackward row \(r), \(columns) columns")
                let logGradient = (0..<columns).map { Double(dLogSoftmax[r * columns + $0]) - before[$0] }
                assertGradient(logGradient, of: { dotProduct(u, logSoftmaxRow($0)) }, at: row(x, r, columns),
                               tolerance: 1e-4, directions: directions, rng: &rng,
                               "logSoftmaxBackward row \(r), \(columns) columns")
            }
        }
    }
}

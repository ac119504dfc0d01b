import Kernels
import XCTest

/// LayerNorm of one row in `Double`, from the definition (biased variance, eps inside the root).
private func layerNormRow(_ x: [Double], weight: [Double], bias: [Double], eps: Double) -> [Double] {
    let mean = x.reduce(0, +) / Double(x.count)
    let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
    let rstd = 1 / (variance + eps).squareRoot()
    return x.indices.map { (x[$0] - mean) * rstd * weight[$0] + bias[$0] }
}

/// RMSNorm of one row in `Double`, from the definition.
private func rmsNormRow(_ x: [Double], weight: [Double], eps: Double) -> [Double] {
    let rstd = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + eps).squareRoot()
    return x.indices.map { x[$0] * rstd * weight[$0] }
}

/// LayerNorm and RMSNorm: forward against the module's references, saved statistics, and backward
/// against central differences, on every awkward channel count.
final class NormTests: XCTestCase {
    /// Rows with different means and spreads (row `t` centred on `t − rows/2`).
    private func input(rows: Int, channels: Int, _ rng: inout SeededRandom) -> [Float] {
        (0..<rows).flatMap { t in
            rng.gaussianFloats(channels, mean: Double(t - rows / 2), deviation: 0.5 + Double(t % 4))
        }
    }

    private func row(_ values: [Float], _ t: Int, _ channels: Int) -> [Double] {
        values[t * channels..<(t + 1) * channels].map(Double.init)
    }

    /// Float32 rounding of a backward row: ~1e-6 of its terms `rstd·weight·dout` (whose difference
    /// can cancel to nearly nothing, e.g. RMSNorm of one channel), plus the rounding of adding the
    /// gradient into a pre-filled buffer of standard normal values.
    private func roundingFloor(_ rstd: Float, weight: [Double], upstream: [Double]) -> Double {
        let largest = zip(weight, upstream).map { abs($0 * $1) }.max() ?? 0
        return 1e-6 * Double(rstd) * largest + 1e-6
    }

    func testLayerNormForwardMatchesReference() {
        let rows = 37, eps: Float = 1e-5
        for channels in awkwardSizes {
            var rng = SeededRandom(seed: UInt64(channels))
            let x = input(rows: rows, channels: channels, &rng)
            let inp = FloatBuffer(x), weight = FloatBuffer(rng.gaussianFloats(channels))
            let bias = FloatBuffer(rng.gaussianFloats(channels))
            let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows)
            let rstd = FloatBuffer(count: rows), expected = FloatBuffer(count: rows * channels)
            layerNormForward(out.pointer, mean.pointer, rstd.pointer, inp.pointer, weight.pointer, bias.pointer,
                             eps: eps, rows, channels)
            layerNormForwardReference(expected.pointer, inp.pointer, weight.pointer, bias.pointer, eps: eps, rows, channels)
            assertClose(out.array, expected.doubles, absolute: 1e-4, relative: 1e-5, "layerNormForward, C=\(channels)")

            let means = (0..<rows).map { row(x, $0, channels).reduce(0, +) / Double(channels) }
            let rstds = (0..<rows).map { t in
                1 / (row(x, t, channels).reduce(0) { $0 + ($1 - means[t]) * ($1 - means[t]) } / Double(channels)
                     + Double(eps)).squareRoot()
            }
            assertClose(mean.array, means, absolute: 1e-5, relative: 1e-6, "layerNorm saved mean, C=\(channels)")
            assertClose(rstd.array, rstds, absolute: 0, relative: 1e-4, "layerNorm saved rstd, C=\(channels)")
        }
    }

    func testRMSNormForwardMatchesReference() {
        let rows = 37, eps: Float = 1e-6
        for channels in awkwardSizes {
            var rng = SeededRandom(seed: 50 + UInt64(channels))
            let x = input(rows: rows, channels: channels, &rng)
            let inp = FloatBuffer(x), weight = FloatBuffer(rng.gaussianFloats(channels))
            let out = FloatBuffer(count: rows * channels), rstd = FloatBuffer(count: rows)
            let expected = FloatBuffer(count: rows * channels)
            rmsNormForward(out.pointer, rstd.pointer, inp.pointer, weight.pointer, eps: eps, rows, channels)
            rmsNormForwardReference(expected.pointer, inp.pointer, weight.pointer, eps: eps, rows, channels)
            assertClose(out.array, expected.doubles, absolute: 1e-5, relative: 1e-5, "rmsNormForward, C=\(channels)")

            let rstds = (0..<rows).map { t in
                1 / (row(x, t, channels).reduce(0) { $0 + $1 * $1 } / Double(channels) + Double(eps)).squareRoot()
            }
            assertClose(rstd.array, rstds, absolute: 0, relative: 1e-5, "rmsNorm saved rstd, C=\(channels)")
        }
    }

    func testNormsHandleConstantRows() {
        // A constant row has zero variance: LayerNorm returns the bias, eps keeps rstd finite.
        let channels = 33, eps: Float = 1e-5
        let inp = FloatBuffer([Float](repeating: 2.5, count: channels))
        var rng = SeededRandom(seed: 60)
        let weight = FloatBuffer(rng.gaussianFloats(channels)), bias = FloatBuffer(rng.gaussianFloats(channels))
        let out = FloatBuffer(count: channels), mean = FloatBuffer(count: 1), rstd = FloatBuffer(count: 1)
        layerNormForward(out.pointer, mean.pointer, rstd.pointer, inp.pointer, weight.pointer, bias.pointer,
                         eps: eps, 1, channels)
        assertClose(out.array, bias.doubles, absolute: 1e-6, "LayerNorm of a constant row")
        XCTAssertEqual(Double(rstd[0]), 1 / Double(eps).squareRoot(), accuracy: 1)
        let zeros = FloatBuffer(count: channels)
        rmsNormForward(out.pointer, rstd.pointer, zeros.pointer, weight.pointer, eps: eps, 1, channels)
        XCTAssertEqual(out.array, [Float](repeating: 0, count: channels), "RMSNorm of a zero row")
        XCTAssertTrue(rstd[0].isFinite)
    }

    func testLayerNormBackwardMatchesFiniteDifferencesAndAccumulates() {
        let rows = 3, eps: Float = 1e-5
        for channels in awkwardSizes {
            var rng = SeededRandom(seed: 70 + UInt64(channels))
            let x = input(rows: rows, channels: channels, &rng)
            let weight = rng.gaussianFloats(channels), bias = rng.gaussianFloats(channels)
            let upstream = rng.gaussianFloats(rows * channels), previous = rng.gaussianFloats(rows * channels)
            let inp = FloatBuffer(x), w = FloatBuffer(weight), b = FloatBuffer(bias), dout = FloatBuffer(upstream)
            let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
            layerNormForward(out.pointer, mean.pointer, rstd.pointer, inp.pointer, w.pointer, b.pointer,
                             eps: eps, rows, channels)
            let dinp = FloatBuffer(previous)
            layerNormBackward(dinp.pointer, dout.pointer, inp.pointer, w.pointer, mean.pointer, rstd.pointer,
                              rows, channels)
            let wd = w.doubles, bd = b.doubles
            for t in 0..<rows {
                let u = row(upstream, t, channels)
                let loss = { (x: [Double]) in dotProduct(u, layerNormRow(x, weight: wd, bias: bd, eps: Double(eps))) }
                let gradient = (0..<channels).map { Double(dinp[t * channels + $0]) - Double(previous[t * channels + $0]) }
                assertGradient(gradient, of: loss, at: row(x, t, channels), tolerance: 1e-4,
                               absolute: roundingFloor(rstd[t], weight: wd, upstream: u), rng: &rng,
                               "layerNormBackward row \(t), C=\(channels)")
            }
        }
    }

    func testRMSNormBackwardMatchesFiniteDifferencesAndAccumulates() {
        let rows = 3, eps: Float = 1e-6
        for channels in awkwardSizes {
            var rng = SeededRandom(seed: 80 + UInt64(channels))
            let x = input(rows: rows, channels: channels, &rng)
            let weight = rng.gaussianFloats(channels)
            let upstream = rng.gaussianFloats(rows * channels), previous = rng.gaussianFloats(rows * channels)
            let inp = FloatBuffer(x), w = FloatBuffer(weight), dout = FloatBuffer(upstream)
            let out = FloatBuffer(count: rows * channels), rstd = FloatBuffer(count: rows)
            rmsNormForward(out.pointer, rstd.pointer, inp.pointer, w.pointer, eps: eps, rows, channels)
            let dinp = FloatBuffer(previous)
            rmsNormBackward(dinp.pointer, dout.pointer, inp.pointer, w.pointer, rstd.pointer, rows, channels)
            let wd = w.doubles
            for t in 0..<rows {
                let u = row(upstream, t, channels)
                let loss = { (x: [Double]) in dotProduct(u, rmsNormRow(x, weight: wd, eps: Double(eps))) }
                let gradient = (0..<channels).map { Double(dinp[t * channels + $0]) - Double(previous[t * channels + $0]) }
                assertGradient(gradient, of: loss, at: row(x, t, channels), tolerance: 1e-4,
                               absolute: roundingFloor(rstd[t], weight: wd, upstream: u), rng: &rng,
                               "rmsNormBackward row \(t), C=\(channels)")
            }
        }
    }

    func testBackwardOverManyRowsMatchesRowByRow() {
        // 40 rows run in parallel chunks; each row must equal the same row normalized alone.
        let rows = 40, channels = 33, eps: Float = 1e-5
        var rng = SeededRandom(seed: 90)
        let inp = FloatBuffer(input(rows: rows, channels: channels, &rng))
        let w = FloatBuffer(rng.gaussianFloats(channels)), b = FloatBuffer(rng.gaussianFloats(channels))
        let dout = FloatBuffer(rng.gaussianFloats(rows * channels))
        let out = FloatBuffer(count: rows * channels), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
        let dLayer = FloatBuffer(count: rows * channels), dRMS = FloatBuffer(count: rows * channels)
        layerNormForward(out.pointer, mean.pointer, rstd.pointer, inp.pointer, w.pointer, b.pointer, eps: eps, rows, channels)
        layerNormBackward(dLayer.pointer, dout.pointer, inp.pointer, w.pointer, mean.pointer, rstd.pointer, rows, channels)
        let rmsRstd = FloatBuffer(count: rows)
        rmsNormForward(out.pointer, rmsRstd.pointer, inp.pointer, w.pointer, eps: eps, rows, channels)
        rmsNormBackward(dRMS.pointer, dout.pointer, inp.pointer, w.pointer, rmsRstd.pointer, rows, channels)
        for t in [0, 17, 39] {
            let offset = t * channels
            let one = FloatBuffer(count: channels), m = FloatBuffer(count: 1), s = FloatBuffer(count: 1)
            let dOne = FloatBuffer(count: channels)
            layerNormForward(one.pointer, m.pointer, s.pointer, inp.pointer + offset, w.pointer, b.pointer, eps: eps, 1, channels)
            layerNormBackward(dOne.pointer, dout.pointer + offset, inp.pointer + offset, w.pointer, m.pointer, s.pointer,
                              1, channels)
            assertBitwiseEqual(Array(dLayer.array[offset..<offset + channels]), dOne.array, "layerNormBackward row \(t)")
            dOne.zero()
            rmsNormForward(one.pointer, s.pointer, inp.pointer + offset, w.pointer, eps: eps, 1, channels)
            rmsNormBackward(dOne.pointer, dout.pointer + offset, inp.pointer + offset, w.pointer, s.pointer, 1, channels)
            assertBitwiseEqual(Array(dRMS.array[offset..<offset + channels]), dOne.array, "rmsNormBackward row \(t)")
        }
    }
}

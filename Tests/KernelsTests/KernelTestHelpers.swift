import Kernels
import XCTest

// Shared helpers of the kernel tests: seeded test data, tolerance assertions, finite differences
// and the few Double references the kernel module does not provide.

/// The awkward sizes every kernel is checked on: 1, a few, just past a vector/block edge (49 also
/// leaves one whole vector after pairs of vectors), and sizes that are not multiples of any power
/// of two the kernels block by.
let awkwardSizes = [1, 7, 33, 49, 577, 1537]

extension SeededRandom {
    /// `count` floats drawn uniformly from `[-scale, scale)`.
    mutating func uniformFloats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in (2 * nextFloat() - 1) * scale }
    }

    /// `count` normal samples with the given mean and standard deviation, rounded to `Float`.
    mutating func gaussianFloats(_ count: Int, mean: Double = 0, deviation: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(mean + deviation * nextGaussian()) }
    }

    /// `count` standard normal samples.
    mutating func gaussians(_ count: Int) -> [Double] {
        (0..<count).map { _ in nextGaussian() }
    }
}

extension FloatBuffer {
    /// The contents widened to `Double`.
    var doubles: [Double] { array.map(Double.init) }
}

/// Fails once, naming the worst element, when some `|actual[i] − expected[i]| > tolerance(i)`
/// (NaN never passes).
func assertClose(
    _ actual: [Double], _ expected: [Double], tolerance: (Int) -> Double, _ what: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(what()): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var failures = 0, worst = 0, worstRatio = -1.0
    for i in actual.indices {
        let error = abs(actual[i] - expected[i]), allowed = tolerance(i)
        if error <= allowed { continue }
        failures += 1
        let ratio = error.isNaN ? .infinity : error / max(allowed, .leastNonzeroMagnitude)
        if ratio > worstRatio { worstRatio = ratio; worst = i }
    }
    if failures > 0 {
        XCTFail("\(what()): \(failures) of \(actual.count) values out of tolerance; worst at [\(worst)]: "
                + "\(actual[worst]), expected \(expected[worst]) ± \(tolerance(worst))", file: file, line: line)
    }
}

/// `assertClose` for a kernel's `Float` results.
func assertClose(
    _ actual: [Float], _ expected: [Double], tolerance: (Int) -> Double, _ what: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(actual.map(Double.init), expected, tolerance: tolerance, what(), file: file, line: line)
}

/// `assertClose` with the tolerance `absolute + relative·|expected[i]|`.
func assertClose(
    _ actual: [Float], _ expected: [Double], absolute: Double, relative: Double = 0,
    _ what: @autoclosure () -> String, file: StaticString = #filePath, line: UInt = #line
) {
    assertClose(actual, expected, tolerance: { absolute + relative * abs(expected[$0]) }, what(), file: file, line: line)
}

/// Fails unless `actual` and `expected` hold the same bits (so NaN sentinels compare equal too).
func assertBitwiseEqual(
    _ actual: [Float], _ expected: [Float], _ what: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(what()): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    let differing = actual.indices.filter { actual[$0].bitPattern != expected[$0].bitPattern }
    if let first = differing.first {
        XCTFail("\(what()): \(differing.count) values differ; first at [\(first)]: \(actual[first]), expected \(expected[first])",
                file: file, line: line)
    }
}

/// `Σ x[i]·y[i]` in `Double`.
func dotProduct(_ x: [Double], _ y: [Double]) -> Double {
    zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
}

/// Central-difference gradient of `f` at `x`, one coordinate at a time.
func numericalGradient(of f: ([Double]) -> Double, at x: [Double], step: Double = 1e-5) -> [Double] {
    var probe = x
    return x.indices.map { i in
        probe[i] = x[i] + step
        let up = f(probe)
        probe[i] = x[i] - step
        let down = f(probe)
        probe[i] = x[i]
        return (up - down) / (2 * step)
    }
}

/// Checks a kernel's gradient of the scalar `f` at `x` against central differences of `f`.
///
/// With `directions == nil` every coordinate is checked:
/// `|g_i − fd_i| ≤ tolerance·(|fd_i| + max|fd|) + absolute`. Otherwise the directional derivative
/// along that many random Gaussian directions `d` is checked, for functions too costly to difference
/// per coordinate: `|⟨g, d⟩ − fd_d| ≤ tolerance·Σ|g_i d_i| + absolute·Σ|d_i|`. `absolute` covers
/// Float32 rounding that does not shrink with the gradient (cancellation, accumulating into a buffer).
func assertGradient(
    _ gradient: [Double], of f: ([Double]) -> Double, at x: [Double], tolerance: Double, absolute: Double = 0,
    directions: Int? = nil, rng: inout SeededRandom, step: Double = 1e-5, _ what: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) {
    guard gradient.count == x.count else {
        XCTFail("\(what()): gradient has \(gradient.count) values, input \(x.count)", file: file, line: line)
        return
    }
    guard let directions else {
        let numeric = numericalGradient(of: f, at: x, step: step)
        let scale = numeric.map(abs).max() ?? 0
        assertClose(gradient, numeric, tolerance: { tolerance * (abs(numeric[$0]) + scale) + absolute },
                    "\(what()) vs central differences", file: file, line: line)
        return
    }
    for direction in 0..<directions {
        let d = rng.gaussians(x.count)
        let up = f(zip(x, d).map { $0 + step * $1 }), down = f(zip(x, d).map { $0 - step * $1 })
        let numeric = (up - down) / (2 * step), analytic = dotProduct(gradient, d)
        let magnitude = zip(gradient, d).reduce(0) { $0 + abs($1.0 * $1.1) }
        let allowed = tolerance * magnitude + absolute * d.reduce(0) { $0 + abs($1) }
        XCTAssertLessThanOrEqual(abs(analytic - numeric), allowed,
                                 "\(what()): derivative along random direction \(direction) is \(analytic), "
                                 + "central differences give \(numeric)", file: file, line: line)
    }
}

/// Softmax of one row in `Double` (max subtracted).
func softmaxRow(_ x: [Double]) -> [Double] {
    let m = x.max() ?? 0
    let e = x.map { exp($0 - m) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
}

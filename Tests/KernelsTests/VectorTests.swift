import Kernels
import XCTest

/// The shared vector primitives against plain loops.
final class VectorTests: XCTestCase {
    func testAddSumOntoABaseMatchesElementwiseSumAlsoInPlace() {
        var rng = SeededRandom(seed: 40)
        // Past the size where the work is split over threads, and not a multiple of 16.
        for count in awkwardSizes + [16 * 1024 * 3 + 5] {
            let a = rng.uniformFloats(count), b = rng.uniformFloats(count)
            let expected = zip(a, b).map { $0 + $1 }
            let out = FloatBuffer(count: count), inPlace = FloatBuffer(a)
            let bBuffer = FloatBuffer(b)
            addSum(out.pointer, [bBuffer.pointer], count, onto: inPlace.pointer)
            XCTAssertEqual(out.array, expected, "count \(count)")
            addSum(inPlace.pointer, [bBuffer.pointer], count)
            XCTAssertEqual(inPlace.array, expected, "count \(count), in place")
        }
    }

    /// The first NaN, infinity or value past a limit is found at every offset, in the vector blocks and in the tail.
    func testFirstOutsideFindsTheFirstBadValue() {
        for n in [0, 1, 15, 16, 17, 49] {
            var x = (0..<n).map { Float($0) * (1e37 / 49) }
            XCTAssertNil(firstOutside(x, n), "n \(n)")
            XCTAssertEqual(firstOutside(x, n, magnitude: 1e36), x.firstIndex { $0 > 1e36 }, "n \(n)")
            for bad in [Float.nan, .infinity, -.infinity] {
                for at in 0..<n {
                    let kept = x[at]
                    x[at] = bad
                    if at + 1 < n { x[n - 1] = .nan }
                    XCTAssertEqual(firstOutside(x, n), at, "n \(n), \(bad) at \(at)")
                    x[at] = kept
                    x[n - 1] = Float(n - 1) * (1e37 / 49)
                }
            }
        }
    }
}

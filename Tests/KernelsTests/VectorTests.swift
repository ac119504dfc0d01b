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
}

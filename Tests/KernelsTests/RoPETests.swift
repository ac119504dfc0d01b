import Foundation
import Kernels
import XCTest

/// Rotary embeddings in both pairings against `ropeReference`, the backward pass as the exact
/// transpose and inverse of the forward one, in-place use and strided rows.
final class RoPETests: XCTestCase {
    private let styles: [RoPEStyle] = [.interleaved, .halfSplit]
    private let headDims = [2, 8, 64]
    private let heads = 3, rows = 70, maxPosition = 100
    /// What the columns past the heads hold; no RoPE kernel may touch them.
    private let sentinel: Float = -777

    private struct Setup {
        let headDim: Int, rowStride: Int, positions: [Int], table: RoPETable, input: [Float]
    }

    /// Rows of `heads` head vectors plus 5 padding columns, at random positions in 0...100 (0 and 100 included).
    private func setup(headDim: Int, base: Float, seed: UInt64) -> Setup {
        var rng = SeededRandom(seed: seed)
        let rowStride = heads * headDim + 5
        var positions = (0..<rows).map { _ in rng.uniform(in: 0...maxPosition) }
        positions[0] = 0
        positions[1] = maxPosition
        let table = RoPETable(headDim: headDim, positions: maxPosition + 1, base: base)
        var input = rng.gaussianFloats(rows * rowStride)
        for r in 0..<rows { for c in heads * headDim..<rowStride { input[r * rowStride + c] = sentinel } }
        return Setup(headDim: headDim, rowStride: rowStride, positions: positions, table: table, input: input)
    }

    /// `ropeReference` applied to every head of every row; padding is expected to stay as it was.
    private func reference(_ s: Setup, _ values: [Float], base: Double, style: RoPEStyle, inverse: Bool) -> [Double] {
        var expected = values.map(Double.init)
        for r in 0..<rows {
            for h in 0..<heads {
                let start = r * s.rowStride + h * s.headDim
                let x = expected[start..<start + s.headDim].map { $0 }
                let position = inverse ? -s.positions[r] : s.positions[r]
                expected.replaceSubrange(start..<start + s.headDim,
                                         with: ropeReference(x, position: position, base: base, style: style))
            }
        }
        return expected
    }

    /// Angles reach 100 radians, where Float32 frequencies are off by ~1e-5 radians.
    private let tolerance = 5e-5

    func testForwardMatchesReference() {
        for style in styles {
            for headDim in headDims {
                for base: Float in [10_000, 500_000] {
                    let s = setup(headDim: headDim, base: base, seed: UInt64(headDim) + UInt64(base))
                    let inp = FloatBuffer(s.input), out = FloatBuffer(s.input)
                    ropeForward(out.pointer, inp.pointer, s.table, s.positions, style, rows, heads, headDim,
                                rowStride: s.rowStride)
                    assertClose(out.array, reference(s, s.input, base: Double(base), style: style, inverse: false),
                                absolute: tolerance, "RoPE forward \(style), headDim \(headDim), base \(base)")
                }
            }
        }
    }

    func testStylesPairDifferentDimensions() {
        // headDim 4 at position 1: interleaved rotates (0,1) by 1 rad and (2,3) by 0.01 rad; half-split
        // rotates (0,2) by 1 rad and (1,3) by 0.01 rad.
        let table = RoPETable(headDim: 4, positions: 2, base: 10_000)
        let inp = FloatBuffer([1, 0, 0, 0]), out = FloatBuffer(count: 4)
        ropeForward(out.pointer, inp.pointer, table, [1], .interleaved, 1, 1, 4, rowStride: 4)
        assertClose(out.array, [cos(1), sin(1), 0, 0], absolute: 1e-6, "interleaved pairs (0, 1)")
        ropeForward(out.pointer, inp.pointer, table, [1], .halfSplit, 1, 1, 4, rowStride: 4)
        assertClose(out.array, [cos(1), 0, sin(1), 0], absolute: 1e-6, "half-split pairs (0, 2)")
    }

    func testBackwardIsTheTransposeAndTheInverse() {
        for style in styles {
            for headDim in headDims {
                let s = setup(headDim: headDim, base: 10_000, seed: 900 + UInt64(headDim))
                var rng = SeededRandom(seed: 950 + UInt64(headDim))
                let y = rng.gaussianFloats(rows * s.rowStride)
                let x = FloatBuffer(s.input), rx = FloatBuffer(count: x.count)
                // The backward pass overwrites its output's head columns (it does not accumulate).
                let garbage = rng.gaussianFloats(x.count)
                let dy = FloatBuffer(y), rty = FloatBuffer(garbage)
                ropeForward(rx.pointer, x.pointer, s.table, s.positions, style, rows, heads, headDim, rowStride: s.rowStride)
                ropeBackward(rty.pointer, dy.pointer, s.table, s.positions, style, rows, heads, headDim, rowStride: s.rowStride)

                // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩ over the head columns.
                let headColumns = (0..<rows * s.rowStride).filter { $0 % s.rowStride < heads * headDim }
                let left = headColumns.reduce(0.0) { $0 + Double(rx[$1]) * Double(y[$1]) }
                let right = headColumns.reduce(0.0) { $0 + Double(x[$1]) * Double(rty[$1]) }
                let magnitude = headColumns.reduce(0.0) { $0 + abs(Double(rx[$1]) * Double(y[$1])) }
                XCTAssertEqual(left, right, accuracy: 1e-6 * magnitude, "⟨Rx, y⟩ vs ⟨x, Rᵀy⟩, \(style), headDim \(headDim)")

                // Rᵀ is the rotation by minus the angle.
                var expectedBack = reference(s, y, base: 10_000, style: style, inverse: true)
                for i in expectedBack.indices where i % s.rowStride >= heads * headDim { expectedBack[i] = Double(garbage[i]) }
                assertClose(rty.array, expectedBack, absolute: tolerance, "RoPE backward \(style), headDim \(headDim)")

                // backward(forward(x)) = x.
                let back = FloatBuffer(count: x.count)
                ropeBackward(back.pointer, rx.pointer, s.table, s.positions, style, rows, heads, headDim, rowStride: s.rowStride)
                let roundTrip = headColumns.map { back[$0] }, original = headColumns.map { Double(x[$0]) }
                assertClose(roundTrip, original, absolute: 1e-5, "RoPE backward(forward(x)), \(style), headDim \(headDim)")
            }
        }
    }

    func testInPlaceMatchesOutOfPlace() {
        for style in styles {
            for headDim in headDims {
                let s = setup(headDim: headDim, base: 10_000, seed: 990 + UInt64(headDim))
                let inp = FloatBuffer(s.input), separate = FloatBuffer(s.input), inPlace = FloatBuffer(s.input)
                ropeForward(separate.pointer, inp.pointer, s.table, s.positions, style, rows, heads, headDim,
                            rowStride: s.rowStride)
                ropeForward(inPlace.pointer, inPlace.pointer, s.table, s.positions, style, rows, heads, headDim,
                            rowStride: s.rowStride)
                assertBitwiseEqual(inPlace.array, separate.array, "in-place RoPE forward, \(style), headDim \(headDim)")
                ropeBackward(separate.pointer, inp.pointer, s.table, s.positions, style, rows, heads, headDim,
                             rowStride: s.rowStride)
                let backInPlace = FloatBuffer(s.input)
                ropeBackward(backInPlace.pointer, backInPlace.pointer, s.table, s.positions, style, rows, heads, headDim,
                             rowStride: s.rowStride)
                assertBitwiseEqual(backInPlace.array, separate.array, "in-place RoPE backward, \(style), headDim \(headDim)")
            }
        }
    }

    func testTableHoldsTheAngles() {
        let table = RoPETable(headDim: 8, positions: 101, base: 10_000)
        XCTAssertEqual(table.positions, 101)
        XCTAssertEqual(table.cos.count, 101 * 4)
        for p in [0, 1, 37, 100] {
            for i in 0..<4 {
                let angle = Double(p) / pow(10_000, Double(2 * i) / 8)
                XCTAssertEqual(Double(table.cos[p * 4 + i]), cos(angle), accuracy: 2e-5, "cos at position \(p), pair \(i)")
                XCTAssertEqual(Double(table.sin[p * 4 + i]), sin(angle), accuracy: 2e-5, "sin at position \(p), pair \(i)")
            }
        }
    }
}

import Kernels
import XCTest

/// The linear-layer wrappers around `gemm` against loops written from their definitions.
final class MatmulTests: XCTestCase {
    private let shapes = [(rows: 33, inFeatures: 577, outFeatures: 7), (7, 64, 1537), (1, 33, 1), (577, 256, 33)]

    func testForwardWithAndWithoutBias() {
        for (index, shape) in shapes.enumerated() {
            var rng = SeededRandom(seed: 10 + UInt64(index))
            let (rows, inFeatures, outFeatures) = shape
            let inp = FloatBuffer(rng.uniformFloats(rows * inFeatures))
            let weight = FloatBuffer(rng.uniformFloats(outFeatures * inFeatures))
            let bias = FloatBuffer(rng.uniformFloats(outFeatures, scale: 3))
            var expected = [Double](repeating: 0, count: rows * outFeatures), magnitude = expected
            for t in 0..<rows {
                for o in 0..<outFeatures {
                    for i in 0..<inFeatures {
                        let term = Double(inp[t * inFeatures + i]) * Double(weight[o * inFeatures + i])
                        expected[t * outFeatures + o] += term
                        magnitude[t * outFeatures + o] += abs(term)
                    }
                }
            }
            let out = FloatBuffer(uninitializedCount: rows * outFeatures)
            out.pointer.update(repeating: .nan, count: out.count)
            matmulForward(out.pointer, inp.pointer, weight.pointer, nil, rows, inFeatures, outFeatures)
            assertClose(out.array, expected, tolerance: { 1e-5 * magnitude[$0] },
                        "matmulForward without bias, \(shape)")

            let withBias = expected.indices.map { expected[$0] + Double(bias[$0 % outFeatures]) }
            matmulForward(out.pointer, inp.pointer, weight.pointer, bias.pointer, rows, inFeatures, outFeatures)
            assertClose(out.array, withBias, tolerance: { 1e-5 * (magnitude[$0] + abs(withBias[$0])) },
                        "matmulForward with bias, \(shape)")
        }
    }

    func testBackwardAccumulatesTheInputGradient() {
        for (index, shape) in shapes.enumerated() {
            var rng = SeededRandom(seed: 20 + UInt64(index))
            let (rows, inFeatures, outFeatures) = shape
            let dout = FloatBuffer(rng.uniformFloats(rows * outFeatures))
            let weight = FloatBuffer(rng.uniformFloats(outFeatures * inFeatures))
            let previous = rng.uniformFloats(rows * inFeatures)
            var expected = previous.map(Double.init), magnitude = expected.map(abs)
            for t in 0..<rows {
                for i in 0..<inFeatures {
                    for o in 0..<outFeatures {
                        let term = Double(dout[t * outFeatures + o]) * Double(weight[o * inFeatures + i])
                        expected[t * inFeatures + i] += term
                        magnitude[t * inFeatures + i] += abs(term)
                    }
                }
            }
            let dinp = FloatBuffer(previous)
            matmulBackward(dinp.pointer, dout.pointer, weight.pointer, rows, inFeatures, outFeatures)
            assertClose(dinp.array, expected, tolerance: { 1e-5 * magnitude[$0] }, "matmulBackward, \(shape)")
        }
    }

    /// The sparse path (two nonzeros per row) and its dense fallback both match `matmulBackward`.
    func testSparseBackwardMatchesDense() {
        var rng = SeededRandom(seed: 40)
        let rows = 5, inFeatures = 37, outFeatures = 300
        let weight = FloatBuffer(rng.uniformFloats(outFeatures * inFeatures))
        let sparse = FloatBuffer(count: rows * outFeatures)
        for t in 0..<rows {
            sparse[t * outFeatures + (7 * t) % outFeatures] = 1 + Float(t)
            sparse[t * outFeatures + (13 * t + 100) % outFeatures] = -0.5
        }
        let dense = FloatBuffer(rng.uniformFloats(rows * outFeatures))
        let previous = rng.uniformFloats(rows * inFeatures)
        for (name, dout) in [("sparse", sparse), ("dense", dense)] {
            for accumulate in [false, true] {
                let expected = FloatBuffer(previous), actual = FloatBuffer(previous)
                matmulBackward(expected.pointer, dout.pointer, weight.pointer, rows, inFeatures, outFeatures, accumulate: accumulate)
                matmulBackwardSparse(actual.pointer, dout.pointer, weight.pointer, rows, inFeatures, outFeatures, accumulate: accumulate)
                assertClose(actual.array, expected.array.map(Double.init), tolerance: { _ in 1e-4 },
                            "matmulBackwardSparse, \(name) dout, accumulate \(accumulate)")
            }
        }
    }

    func testAddBiasRespectsRowStride() {
        var rng = SeededRandom(seed: 30)
        let rows = 5, features = 33, stride = 40
        let initial = rng.uniformFloats(rows * stride), bias = FloatBuffer(rng.uniformFloats(features))
        let out = FloatBuffer(initial)
        addBias(out.pointer, bias.pointer, rows, features, rowStride: stride)
        let expected = initial.indices.map { index in
            index % stride < features ? initial[index] + bias[index % stride] : initial[index]
        }
        assertBitwiseEqual(out.array, expected, "addBias with rowStride \(stride)")

        let packed = FloatBuffer(initial)
        addBias(packed.pointer, bias.pointer, 3, features)
        let expectedPacked = initial.indices.map { $0 < 3 * features ? initial[$0] + bias[$0 % features] : initial[$0] }
        assertBitwiseEqual(packed.array, expectedPacked, "addBias with packed rows")
    }
}

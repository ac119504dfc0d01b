import Foundation
import Kernels
import XCTest

/// GELU (tanh form), SiLU and SwiGLU against their `Double` references, and their backward passes
/// against central differences of those references, including saturated inputs.
final class ActivationTests: XCTestCase {
    /// Counts from one element to several parallel chunks (chunks are at least 4096 long).
    private let counts = [1, 7, 33, 577, 10_007]

    /// Gaussian inputs (σ = 3) led by zero, tiny and saturating values.
    private func inputs(_ count: Int, _ rng: inout SeededRandom) -> [Float] {
        let special: [Float] = [0, 1e-3, -1e-3, 10, -10, 30, -30, 100, -100]
        var x = rng.gaussianFloats(count, deviation: 3)
        for i in 0..<min(count, special.count) { x[i] = special[i] }
        return x
    }

    /// Central-difference derivative of a scalar function.
    private func derivative(_ f: (Double) -> Double, at x: Double) -> Double {
        let h = 1e-5 * max(1, abs(x))
        return (f(x + h) - f(x - h)) / (2 * h)
    }

    private typealias Forward = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
    private typealias Backward = (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void

    private func checkUnary(_ name: String, _ forward: Forward, _ backward: Backward, reference: (Double) -> Double) {
        for count in counts {
            var rng = SeededRandom(seed: UInt64(count) + (name == "gelu" ? 0 : 1_000_000))
            let x = inputs(count, &rng), dout = rng.gaussianFloats(count), previous = rng.gaussianFloats(count)
            let inp = FloatBuffer(x), out = FloatBuffer(count: count), upstream = FloatBuffer(dout)
            forward(out.pointer, inp.pointer, count)
            let expected = x.map { reference(Double($0)) }
            assertClose(out.array, expected, tolerance: { 1e-6 * (1 + abs(Double(x[$0]))) + 1e-5 * abs(expected[$0]) },
                        "\(name) forward, count \(count)")

            let dinp = FloatBuffer(previous)
            backward(dinp.pointer, inp.pointer, upstream.pointer, count)
            let local = x.map { derivative(reference, at: Double($0)) }
            let expectedGradient = (0..<count).map { Double(previous[$0]) + Double(dout[$0]) * local[$0] }
            assertClose(dinp.array, expectedGradient, tolerance: { i in
                1e-6 * (abs(Double(previous[i])) + abs(Double(dout[i])) * (1 + abs(Double(x[i])))) + 1e-5 * abs(expectedGradient[i])
            }, "\(name) backward (accumulated), count \(count)")
        }
    }

    func testGELU() {
        checkUnary("gelu", { geluForward($0, $1, $2) }, { geluBackward($0, $1, $2, $3) }, reference: geluReference)
    }

    func testGELUIsTheTanhApproximation() {
        // Independent of `geluReference`: at x = 1 the tanh form gives 0.841192 (erf form: 0.841345).
        let inp = FloatBuffer([1, -1]), out = FloatBuffer(count: 2)
        geluForward(out.pointer, inp.pointer, 2)
        let tanhForm = 0.5 * (1 + tanh((2 / Double.pi).squareRoot() * 1.044715))
        XCTAssertEqual(Double(out[0]), tanhForm, accuracy: 1e-6)
        XCTAssertEqual(Double(out[1]), tanhForm - 1, accuracy: 1e-6)
        XCTAssertEqual(tanhForm, 0.841192, accuracy: 1e-6)
    }

    func testSiLU() {
        checkUnary("silu", { siluForward($0, $1, $2) }, { siluBackward($0, $1, $2, $3) }, reference: siluReference)
    }

    func testSwiGLU() {
        for count in counts {
            var rng = SeededRandom(seed: 500 + UInt64(count))
            let gate = inputs(count, &rng), up = rng.gaussianFloats(count, deviation: 2)
            let dout = rng.gaussianFloats(count)
            let previousGate = rng.gaussianFloats(count), previousUp = rng.gaussianFloats(count)
            let g = FloatBuffer(gate), u = FloatBuffer(up), out = FloatBuffer(count: count), upstream = FloatBuffer(dout)
            swigluForward(out.pointer, g.pointer, u.pointer, 1, count, inputStride: count)
            let expected = (0..<count).map { siluReference(Double(gate[$0])) * Double(up[$0]) }
            assertClose(out.array, expected, tolerance: { i in
                1e-6 * (1 + abs(Double(gate[i]))) * abs(Double(up[i])) + 1e-5 * abs(expected[i])
            }, "swiglu forward, count \(count)")

            let dgate = FloatBuffer(previousGate), dup = FloatBuffer(previousUp)
            swigluBackward(dgate.pointer, dup.pointer, g.pointer, u.pointer, upstream.pointer, 1, count, inputStride: count)
            let expectedGate = (0..<count).map { i in
                Double(previousGate[i]) + Double(dout[i]) * derivative({ siluReference($0) * Double(up[i]) }, at: Double(gate[i]))
            }
            let expectedUp = (0..<count).map { i in
                Double(previousUp[i]) + Double(dout[i]) * derivative({ siluReference(Double(gate[i])) * $0 }, at: Double(up[i]))
            }
            let scale = { (i: Int) in abs(Double(dout[i])) * (1 + abs(Double(gate[i]))) * (1 + abs(Double(up[i]))) }
            assertClose(dgate.array, expectedGate, tolerance: { i in
                1e-6 * (abs(Double(previousGate[i])) + scale(i)) + 1e-5 * abs(expectedGate[i])
            }, "swiglu gate gradient (accumulated), count \(count)")
            assertClose(dup.array, expectedUp, tolerance: { i in
                1e-6 * (abs(Double(previousUp[i])) + scale(i)) + 1e-5 * abs(expectedUp[i])
            }, "swiglu up gradient (accumulated), count \(count)")
        }
    }
}

/// The vectorized exponential against `Double` `exp`.
final class VectorExpTests: XCTestCase {
    func testVectorExpIsWithinAboutOneUlp() {
        var rng = SeededRandom(seed: 5)
        var worst = 0.0
        for _ in 0..<20_000 {
            var x = SIMD16<Float>()
            for lane in 0..<16 { x[lane] = Float(rng.nextDouble() * 176 - 88) }
            let y = vectorExp(x)
            for lane in 0..<16 {
                let exact = Foundation.exp(Double(x[lane]))
                guard exact > 1e-37, exact < 3e38 else { continue }
                worst = max(worst, abs(Double(y[lane]) - exact) / exact)
            }
        }
        XCTAssertLessThan(worst, 3e-7, "relative error of vectorExp")
        let edges = vectorExp(SIMD16<Float>(repeating: -200))
        XCTAssertEqual(edges[0], 0)
        XCTAssertEqual(vectorExp(SIMD16<Float>(repeating: 200))[3], .infinity)
        XCTAssertEqual(vectorExp(SIMD16<Float>(repeating: 0))[7], 1)
    }
}

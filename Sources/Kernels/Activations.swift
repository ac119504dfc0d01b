import Foundation

/// Elementwise activations with their backward passes: GELU (tanh form, GPT-2), SiLU and SwiGLU (Llama).

private let geluScale = Float((2.0 / Double.pi).squareRoot())

/// GELU, tanh approximation: `out = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
///
/// - Parameters:
///   - out: `[count]`
///   - inp: `[count]`
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(geluScale * (x + 0.044715 * x * x * x)))
        }
    }
}

/// GELU input gradient, accumulated (overwritten when `accumulate` is false).
///
/// - Parameters:
///   - dinp: `[count]`, accumulated into
///   - inp: `[count]`, the forward input
///   - dout: `[count]`
public func geluBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ count: Int,
    accumulate: Bool = true
) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            let th = tanhf(u)
            let sech2 = 1 - th * th
            let local = 0.5 * (1 + th) + 0.5 * x * sech2 * geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] = accumulate ? dinp[i] + local * dout[i] : local * dout[i]
        }
    }
}

@inline(__always)
private func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// SiLU: `out = x·σ(x)`.
///
/// - Parameters:
///   - out: `[count]`
///   - inp: `[count]`
public func siluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range { out[i] = inp[i] * sigmoid(inp[i]) }
    }
}

/// SiLU input gradient, accumulated: `dinp += dout·σ(x)·(1 + x·(1 − σ(x)))`.
///
/// - Parameters:
///   - dinp: `[count]`, accumulated into
///   - inp: `[count]`, the forward input
///   - dout: `[count]`
public func siluBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ count: Int
) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range {
            let s = sigmoid(inp[i])
            dinp[i] += dout[i] * s * (1 + inp[i] * (1 - s))
        }
    }
}

/// SwiGLU: `out = silu(gate)·up`.
///
/// - Parameters:
///   - out: `[count]`
///   - gate, up: `[count]`
public func swigluForward(
    _ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ count: Int
) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range { out[i] = gate[i] * sigmoid(gate[i]) * up[i] }
    }
}

/// SwiGLU gradients of both inputs, accumulated (overwritten when `accumulate` is false).
///
/// - Parameters:
///   - dgate, dup: `[count]`, accumulated into
///   - gate, up: `[count]`, the forward inputs
///   - dout: `[count]`
public func swigluBackward(
    _ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>,
    _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ count: Int,
    accumulate: Bool = true
) {
    parallelChunks(count, minimumChunk: 4096) { range in
        for i in range {
            let g = gate[i], s = sigmoid(g)
            let du = dout[i] * g * s, dg = dout[i] * up[i] * s * (1 + g * (1 - s))
            dup[i] = accumulate ? dup[i] + du : du
            dgate[i] = accumulate ? dgate[i] + dg : dg
        }
    }
}

/// Naive GELU (tanh form) in `Double`, for tests.
public func geluReference(_ x: Double) -> Double {
    0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
}

/// Naive SiLU in `Double`, for tests.
public func siluReference(_ x: Double) -> Double { x / (1 + exp(-x)) }

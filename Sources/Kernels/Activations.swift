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

/// SwiGLU: `out = silu(gate)·up`, row by row.
///
/// The gate and up projections usually come out of one fused GEMM, side by side in each row, so they
/// are read with a row stride.
///
/// - Parameters:
///   - out: `[rows, columns]`
///   - gate, up: `[rows, columns]` with rows `inputStride` floats apart
public func swigluForward(
    _ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>,
    _ rows: Int, _ columns: Int, inputStride: Int
) {
    parallelChunks(rows, minimumChunk: 8) { range in
        for r in range {
            let g = gate + r * inputStride, u = up + r * inputStride, o = out + r * columns
            var i = 0
            while i + 16 <= columns {
                let gv = load(g + i), uv = load(u + i)
                store(o + i, gv / (Vec(repeating: 1) + vectorExp(-gv)) * uv)
                i += 16
            }
            while i < columns { o[i] = g[i] * sigmoid(g[i]) * u[i]; i += 1 }
        }
    }
}

/// SwiGLU gradients of both inputs, accumulated (overwritten when `accumulate` is false).
///
/// - Parameters:
///   - dgate, dup: `[rows, columns]` with rows `inputStride` floats apart, accumulated into
///   - gate, up: `[rows, columns]` forward inputs, rows `inputStride` apart
///   - dout: `[rows, columns]`
public func swigluBackward(
    _ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>,
    _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
    _ rows: Int, _ columns: Int, inputStride: Int, accumulate: Bool = true
) {
    parallelChunks(rows, minimumChunk: 8) { range in
        for r in range {
            let g = gate + r * inputStride, u = up + r * inputStride, dy = dout + r * columns
            let dg = dgate + r * inputStride, du = dup + r * inputStride
            var i = 0
            while i + 16 <= columns {
                let gv = load(g + i), y = load(dy + i), uv = load(u + i)
                let sv = Vec(repeating: 1) / (Vec(repeating: 1) + vectorExp(-gv))
                var dUp = y * gv * sv, dGate = y * uv * sv * (Vec(repeating: 1) + gv * (Vec(repeating: 1) - sv))
                if accumulate {
                    dUp += load(du + i)
                    dGate += load(dg + i)
                }
                store(du + i, dUp)
                store(dg + i, dGate)
                i += 16
            }
            while i < columns {
                let s = sigmoid(g[i])
                let dUp = dy[i] * g[i] * s, dGate = dy[i] * u[i] * s * (1 + g[i] * (1 - s))
                du[i] = accumulate ? du[i] + dUp : dUp
                dg[i] = accumulate ? dg[i] + dGate : dGate
                i += 1
            }
        }
    }
}

/// Naive GELU (tanh form) in `Double`, for tests.
public func geluReference(_ x: Double) -> Double {
    0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
}

/// Naive SiLU in `Double`, for tests.
public func siluReference(_ x: Double) -> Double { x / (1 + exp(-x)) }

import Foundation

/// Rotary position embeddings (RoPE), forward and backward, in both pairings in use.

/// Which dimensions of a head RoPE rotates together.
public enum RoPEStyle: String, Sendable, Codable {
    /// Pairs `(2i, 2i+1)`: llama.cpp / GGUF weights (the converter permutes Q/K rows for it).
    case interleaved
    /// Pairs `(i, i + d/2)`: HF transformers weights (`rotate_half`).
    case halfSplit = "half_split"
}

/// Cosines and sines of `position · θᵢ` for every position and frequency.
///
/// Frequencies follow HF transformers in Float32 (`θᵢ = 1 / base^(2i/d)`), so logits match it closely.
public struct RoPETable: Sendable {
    /// Rotated dimensions per head (even).
    public let headDim: Int
    /// `[positions, headDim/2]`
    public let cos: [Float]
    /// `[positions, headDim/2]`
    public let sin: [Float]
    /// Number of positions in the table.
    public let positions: Int

    /// Builds the table for `positions` positions.
    public init(headDim: Int, positions: Int, base: Float) {
        precondition(headDim % 2 == 0, "RoPE needs an even head dimension")
        self.headDim = headDim
        self.positions = positions
        let half = headDim / 2
        let inverseFrequency = (0..<half).map { i in 1 / powf(base, Float(2 * i) / Float(headDim)) }
        var c = [Float](repeating: 0, count: positions * half), s = c
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Float(p) * inverseFrequency[i]
                c[p * half + i] = cosf(angle)
                s[p * half + i] = sinf(angle)
            }
        }
        cos = c
        sin = s
    }
}

/// Rotates every head of every row by its position's angles (`direction` +1), or back (−1).
@inline(__always)
private func ropeRotate(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ table: RoPETable, _ positions: [Int],
    _ style: RoPEStyle, direction: Float, _ rows: Int, _ heads: Int, _ headDim: Int, _ rowStride: Int
) {
    let half = headDim / 2
    table.cos.withUnsafeBufferPointer { cosTable in
        table.sin.withUnsafeBufferPointer { sinTable in
            parallelChunks(rows, minimumChunk: 32) { range in
                for r in range {
                    let c = cosTable.baseAddress! + positions[r] * half
                    let s = sinTable.baseAddress! + positions[r] * half
                    for h in 0..<heads {
                        let x = inp + r * rowStride + h * headDim, y = out + r * rowStride + h * headDim
                        for i in 0..<half {
                            let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                            let x0 = x[a], x1 = x[b], sn = direction * s[i]
                            y[a] = x0 * c[i] - x1 * sn
                            y[b] = x0 * sn + x1 * c[i]
                        }
                    }
                }
            }
        }
    }
}

/// RoPE forward: rotates each head's pairs by `position · θᵢ`. `out` may be `inp` (in place).
///
/// - Parameters:
///   - out: `[rows, rowStride]`, heads at columns `h·headDim ..< (h+1)·headDim`
///   - inp: `[rows, rowStride]`
///   - positions: `[rows]`, each below `table.positions`
public func ropeForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ table: RoPETable, _ positions: [Int],
    _ style: RoPEStyle, _ rows: Int, _ heads: Int, _ headDim: Int, rowStride: Int
) {
    ropeRotate(out, inp, table, positions, style, direction: 1, rows, heads, headDim, rowStride)
}

/// RoPE backward: the rotation is orthogonal, so the input gradient is `dout` rotated back.
/// `dinp` may be `dout` (in place); unlike other backward kernels this one overwrites.
///
/// - Parameters:
///   - dinp: `[rows, rowStride]`
///   - dout: `[rows, rowStride]`
///   - positions: `[rows]`
public func ropeBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ table: RoPETable, _ positions: [Int],
    _ style: RoPEStyle, _ rows: Int, _ heads: Int, _ headDim: Int, rowStride: Int
) {
    ropeRotate(dinp, dout, table, positions, style, direction: -1, rows, heads, headDim, rowStride)
}

/// Naive RoPE of one head vector in `Double`, for tests.
public func ropeReference(_ x: [Double], position: Int, base: Double, style: RoPEStyle) -> [Double] {
    let d = x.count, half = d / 2
    var y = x
    for i in 0..<half {
        let theta = Double(position) / pow(base, Double(2 * i) / Double(d))
        let (a, b) = style == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
        y[a] = x[a] * Foundation.cos(theta) - x[b] * Foundation.sin(theta)
        y[b] = x[a] * Foundation.sin(theta) + x[b] * Foundation.cos(theta)
    }
    return y
}

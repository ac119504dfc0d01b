import Foundation

/// LayerNorm and RMSNorm, forward and backward, over rows of `channels` floats.
///
/// Backward functions compute only the input gradient (circuit discovery never needs weight
/// gradients) and accumulate it into `dinp`, llm.c style. Statistics saved by the forward pass
/// (`mean`, `rstd`) are reused by the backward pass.

private typealias Vec = SIMD16<Float>

@inline(__always)
private func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
private func store(_ p: UnsafeMutablePointer<Float>, _ v: Vec) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

/// LayerNorm: `out[t] = (inp[t] − mean) · rstd · weight + bias`, saving `mean[t]` and `rstd[t]`.
///
/// - Parameters:
///   - out: `[rows, channels]`
///   - mean, rstd: `[rows]`
///   - inp: `[rows, channels]`
///   - weight, bias: `[channels]`
public func layerNormForward(
    _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
    eps: Float, _ rows: Int, _ channels: Int
) {
    parallelChunks(rows, minimumChunk: 16) { range in
        for t in range {
            let x = inp + t * channels, y = out + t * channels
            let m = vectorSum(x, channels) / Float(channels)
            var v: Float = 0
            for i in 0..<channels { let d = x[i] - m; v += d * d }
            let s = 1 / (v / Float(channels) + eps).squareRoot()
            for i in 0..<channels { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
            mean[t] = m
            rstd[t] = s
        }
    }
}

/// LayerNorm input gradient: `dinp[t] += rstd·(g − mean(g) − x̂·mean(g·x̂))` with `g = weight·dout`.
///
/// With `accumulate` false `dinp` is overwritten instead, and may be `dout` itself (in place).
///
/// - Parameters:
///   - dinp: `[rows, channels]`, accumulated into
///   - dout: `[rows, channels]`
///   - inp: `[rows, channels]`, the forward input
///   - weight: `[channels]`
///   - mean, rstd: `[rows]` from the forward pass
public func layerNormBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
    _ rows: Int, _ channels: Int, accumulate: Bool = true
) {
    parallelChunks(rows, minimumChunk: 16) { range in
        for t in range {
            let x = inp + t * channels, dy = dout + t * channels, dx = dinp + t * channels
            let m = mean[t], s = rstd[t]
            var gMean: Float = 0, gxMean: Float = 0
            for i in 0..<channels {
                let g = weight[i] * dy[i]
                gMean += g
                gxMean += g * (x[i] - m) * s
            }
            gMean /= Float(channels)
            gxMean /= Float(channels)
            for i in 0..<channels {
                let xhat = (x[i] - m) * s
                let g = s * (weight[i] * dy[i] - gMean - xhat * gxMean)
                dx[i] = accumulate ? dx[i] + g : g
            }
        }
    }
}

/// RMSNorm: `out[t] = inp[t] · rstd · weight` with `rstd = 1/√(mean(x²) + eps)`, saving `rstd[t]`.
///
/// - Parameters:
///   - out: `[rows, channels]`
///   - rstd: `[rows]`
///   - inp: `[rows, channels]`
///   - weight: `[channels]`
public func rmsNormForward(
    _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, eps: Float, _ rows: Int, _ channels: Int
) {
    parallelChunks(rows, minimumChunk: 16) { range in
        for t in range {
            let x = inp + t * channels, y = out + t * channels
            let s = 1 / (dot(x, x, channels) / Float(channels) + eps).squareRoot()
            for i in 0..<channels { y[i] = x[i] * s * weight[i] }
            rstd[t] = s
        }
    }
}

/// RMSNorm input gradient: `dinp[t] += rstd·(g − x̂·mean(g·x̂))` with `g = weight·dout`, `x̂ = x·rstd`.
///
/// With `accumulate` false `dinp` is overwritten instead, and may be `dout` itself (in place).
///
/// - Parameters:
///   - dinp: `[rows, channels]`, accumulated into
///   - dout: `[rows, channels]`
///   - inp: `[rows, channels]`, the forward input
///   - weight: `[channels]`
///   - rstd: `[rows]` from the forward pass
public func rmsNormBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
    _ weight: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ rows: Int, _ channels: Int, accumulate: Bool = true
) {
    parallelChunks(rows, minimumChunk: 16) { range in
        for t in range {
            let x = inp + t * channels, dy = dout + t * channels, dx = dinp + t * channels
            let s = rstd[t]
            var gx: Float = 0
            for i in 0..<channels { gx += weight[i] * dy[i] * x[i] }
            let coefficient = gx * s * s / Float(channels)
            if accumulate {
                for i in 0..<channels { dx[i] += s * (weight[i] * dy[i] - x[i] * coefficient) }
            } else {
                for i in 0..<channels { dx[i] = s * (weight[i] * dy[i] - x[i] * coefficient) }
            }
        }
    }
}

/// Naive LayerNorm forward in `Double`, for tests.
public func layerNormForwardReference(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ bias: UnsafePointer<Float>, eps: Float, _ rows: Int, _ channels: Int
) {
    for t in 0..<rows {
        let x = (0..<channels).map { Double(inp[t * channels + $0]) }
        let m = x.reduce(0, +) / Double(channels)
        let v = x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(channels)
        let s = 1 / (v + Double(eps)).squareRoot()
        for i in 0..<channels { out[t * channels + i] = Float((x[i] - m) * s * Double(weight[i]) + Double(bias[i])) }
    }
}

/// Naive RMSNorm forward in `Double`, for tests.
public func rmsNormForwardReference(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    eps: Float, _ rows: Int, _ channels: Int
) {
    for t in 0..<rows {
        let x = (0..<channels).map { Double(inp[t * channels + $0]) }
        let s = 1 / (x.map { $0 * $0 }.reduce(0, +) / Double(channels) + Double(eps)).squareRoot()
        for i in 0..<channels { out[t * channels + i] = Float(x[i] * s * Double(weight[i])) }
    }
}

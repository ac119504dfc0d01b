import Foundation

/// LayerNorm and RMSNorm, forward and backward, over rows of `channels` floats.
///
/// Backward functions compute only the input gradient (circuit discovery never needs weight
/// gradients) and accumulate it into `dinp`, llm.c style. Statistics saved by the forward pass
/// (`mean`, `rstd`) are reused by the backward pass.

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
            var acc = Vec(), i = 0
            while i + 16 <= channels { let d = load(x + i) - m; acc = acc.addingProduct(d, d); i += 16 }
            var v = acc.sum()
            while i < channels { let d = x[i] - m; v += d * d; i += 1 }
            let s = 1 / (v / Float(channels) + eps).squareRoot()
            i = 0
            while i + 16 <= channels {
                store(y + i, (load(x + i) - m) * s * load(weight + i) + load(bias + i))
                i += 16
            }
            while i < channels { y[i] = (x[i] - m) * s * weight[i] + bias[i]; i += 1 }
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
            var gAcc = Vec(), gxAcc = Vec(), i = 0
            while i + 16 <= channels {
                let g = load(weight + i) * load(dy + i)
                gAcc += g
                gxAcc = gxAcc.addingProduct(g, (load(x + i) - m) * s)
                i += 16
            }
            var gMean = gAcc.sum(), gxMean = gxAcc.sum()
            while i < channels {
                let g = weight[i] * dy[i]
                gMean += g
                gxMean += g * (x[i] - m) * s
                i += 1
            }
            gMean /= Float(channels)
            gxMean /= Float(channels)
            i = 0
            while i + 16 <= channels {
                let xhat = (load(x + i) - m) * s
                var g = s * (load(weight + i) * load(dy + i) - gMean - xhat * gxMean)
                if accumulate { g += load(dx + i) }
                store(dx + i, g)
                i += 16
            }
            while i < channels {
                let xhat = (x[i] - m) * s
                let g = s * (weight[i] * dy[i] - gMean - xhat * gxMean)
                dx[i] = accumulate ? dx[i] + g : g
                i += 1
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
            var i = 0
            while i + 16 <= channels { store(y + i, load(x + i) * s * load(weight + i)); i += 16 }
            while i < channels { y[i] = x[i] * s * weight[i]; i += 1 }
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
            // Two accumulators, so that consecutive fused multiply-adds do not wait on each other.
            var acc0 = Vec(), acc1 = Vec(), i = 0
            while i + 32 <= channels {
                acc0 = acc0.addingProduct(load(weight + i) * load(dy + i), load(x + i))
                acc1 = acc1.addingProduct(load(weight + i + 16) * load(dy + i + 16), load(x + i + 16))
                i += 32
            }
            if i + 16 <= channels { acc0 = acc0.addingProduct(load(weight + i) * load(dy + i), load(x + i)); i += 16 }
            var gx = (acc0 + acc1).sum()
            while i < channels { gx += weight[i] * dy[i] * x[i]; i += 1 }
            let coefficient = gx * s * s / Float(channels)
            i = 0
            while i + 16 <= channels {
                var g = s * (load(weight + i) * load(dy + i) - load(x + i) * coefficient)
                if accumulate { g += load(dx + i) }
                store(dx + i, g)
                i += 16
            }
            while i < channels {
                let g = s * (weight[i] * dy[i] - x[i] * coefficient)
                dx[i] = accumulate ? dx[i] + g : g
                i += 1
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

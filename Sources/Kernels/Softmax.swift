import Foundation

/// Row-wise softmax and log-softmax, forward and backward, for the metric heads.

/// `probs[r] = softmax(logits[r])`, computed stably (max subtracted).
///
/// - Parameters:
///   - probs: `[rows, columns]`
///   - logits: `[rows, columns]`
public func softmaxForward(_ probs: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>, _ rows: Int, _ columns: Int) {
    parallelFor(rows) { r in
        let x = logits + r * columns, p = probs + r * columns
        var m = -Float.infinity
        for i in 0..<columns { m = max(m, x[i]) }
        var total: Float = 0
        for i in 0..<columns {
            let e = expf(x[i] - m)
            p[i] = e
            total += e
        }
        let inverse = 1 / total
        for i in 0..<columns { p[i] *= inverse }
    }
}

/// Softmax input gradient, accumulated: `dlogits[r] += p ⊙ (dprobs − Σ p·dprobs)`.
///
/// - Parameters:
///   - dlogits: `[rows, columns]`, accumulated into
///   - dprobs: `[rows, columns]`
///   - probs: `[rows, columns]` from the forward pass
public func softmaxBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ dprobs: UnsafePointer<Float>, _ probs: UnsafePointer<Float>,
    _ rows: Int, _ columns: Int
) {
    parallelFor(rows) { r in
        let p = probs + r * columns, g = dprobs + r * columns, d = dlogits + r * columns
        let weighted = dot(p, g, columns)
        for i in 0..<columns { d[i] += p[i] * (g[i] - weighted) }
    }
}

/// `out[r] = log softmax(logits[r])`.
///
/// - Parameters:
///   - out: `[rows, columns]`
///   - logits: `[rows, columns]`
public func logSoftmaxForward(_ out: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>, _ rows: Int, _ columns: Int) {
    parallelFor(rows) { r in
        let x = logits + r * columns, y = out + r * columns
        var m = -Float.infinity
        for i in 0..<columns { m = max(m, x[i]) }
        var total: Double = 0
        for i in 0..<columns { total += Double(expf(x[i] - m)) }
        let logTotal = m + Float(Foundation.log(total))
        for i in 0..<columns { y[i] = x[i] - logTotal }
    }
}

/// Log-softmax input gradient, accumulated: `dlogits[r] += dout − softmax·Σ dout`.
///
/// - Parameters:
///   - dlogits: `[rows, columns]`, accumulated into
///   - dout: `[rows, columns]`
///   - logProbs: `[rows, columns]` from the forward pass
public func logSoftmaxBackward(
    _ dlogits: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ logProbs: UnsafePointer<Float>,
    _ rows: Int, _ columns: Int
) {
    parallelFor(rows) { r in
        let lp = logProbs + r * columns, g = dout + r * columns, d = dlogits + r * columns
        let total = vectorSum(g, columns)
        for i in 0..<columns { d[i] += g[i] - expf(lp[i]) * total }
    }
}

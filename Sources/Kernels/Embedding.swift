/// Token (and learned position) embedding lookup, forward and backward.

/// `out[r] = wte[tokens[r]] (+ wpe[positions[r]])`.
///
/// - Parameters:
///   - out: `[rows, channels]`
///   - tokens: `[rows]`, each below the vocabulary size
///   - wte: `[vocab, channels]`
///   - wpe: `[maxPositions, channels]` or nil (rotary models)
///   - positions: `[rows]`
public func embeddingForward(
    _ out: UnsafeMutablePointer<Float>, _ tokens: [Int], _ wte: UnsafePointer<Float>,
    _ wpe: UnsafePointer<Float>?, _ positions: [Int], _ rows: Int, _ channels: Int
) {
    parallelChunks(rows, minimumChunk: 64) { range in
        for r in range {
            let y = out + r * channels
            y.update(from: wte + tokens[r] * channels, count: channels)
            if let wpe { axpy(y, 1, wpe + positions[r] * channels, channels) }
        }
    }
}

/// Token-embedding gradient, accumulated: `dwte[tokens[r]] += dout[r]` (serial: rows may share a token).
///
/// - Parameters:
///   - dwte: `[vocab, channels]`, accumulated into
///   - dout: `[rows, channels]`
///   - tokens: `[rows]`
public func embeddingBackward(
    _ dwte: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ tokens: [Int], _ rows: Int, _ channels: Int
) {
    for r in 0..<rows { axpy(dwte + tokens[r] * channels, 1, dout + r * channels, channels) }
}

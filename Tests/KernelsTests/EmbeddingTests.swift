import Kernels
import XCTest

/// Embedding gather (with and without a learned position table) and its scatter-add backward.
final class EmbeddingTests: XCTestCase {
    private let vocabulary = 50, maxPositions = 140

    /// 130 tokens (parallel chunks are at least 64 rows) drawn from the first 20 ids, so many repeat
    /// and ids 20..<50 never occur.
    private func tokens(_ rng: inout SeededRandom) -> [Int] {
        (0..<130).map { _ in rng.uniform(below: 20) }
    }

    func testForwardGathersRowsAndAddsPositions() {
        for channels in [1, 33, 577] {
            var rng = SeededRandom(seed: 1100 + UInt64(channels))
            let ids = tokens(&rng), rows = ids.count
            let positions = (0..<rows).map { _ in rng.uniform(below: maxPositions) }
            let wteValues = rng.gaussianFloats(vocabulary * channels), wpeValues = rng.gaussianFloats(maxPositions * channels)
            let wte = FloatBuffer(wteValues), wpe = FloatBuffer(wpeValues)
            let out = FloatBuffer([Float](repeating: .nan, count: rows * channels))
            embeddingForward(out.pointer, ids, wte.pointer, nil, positions, rows, channels)
            let gathered = (0..<rows).flatMap { r in wteValues[ids[r] * channels..<(ids[r] + 1) * channels] }
            assertBitwiseEqual(out.array, gathered, "token embeddings, \(channels) channels")

            embeddingForward(out.pointer, ids, wte.pointer, wpe.pointer, positions, rows, channels)
            let summed = (0..<rows * channels).map { i in
                let (r, c) = i.quotientAndRemainder(dividingBy: channels)
                return wteValues[ids[r] * channels + c] + wpeValues[positions[r] * channels + c]
            }
            assertBitwiseEqual(out.array, summed, "token + position embeddings, \(channels) channels")
        }
    }

    func testBackwardScatterAddsRepeatedTokens() {
        for channels in [1, 33, 577] {
            var rng = SeededRandom(seed: 1200 + UInt64(channels))
            let ids = tokens(&rng), rows = ids.count
            let upstream = rng.gaussianFloats(rows * channels), previous = rng.gaussianFloats(vocabulary * channels)
            var expected = previous.map(Double.init)
            for r in 0..<rows {
                for c in 0..<channels { expected[ids[r] * channels + c] += Double(upstream[r * channels + c]) }
            }
            let dwte = FloatBuffer(previous), dout = FloatBuffer(upstream)
            embeddingBackward(dwte.pointer, dout.pointer, ids, rows, channels)
            assertClose(dwte.array, expected, absolute: 1e-5, "embedding gradient, \(channels) channels")
            let unused = 20 * channels..<vocabulary * channels
            assertBitwiseEqual(Array(dwte.array[unused]), Array(previous[unused]), "rows of tokens that never occur")
        }
    }
}

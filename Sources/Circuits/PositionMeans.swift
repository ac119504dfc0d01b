import Kernels
import Transformer

/// Mean sender outputs per position over examples (mean ablation): `[senders, positions, d]`.
final class PositionMeans {
    /// Running sums, `[senders, positions, d]`.
    private let sums: FloatBuffer
    /// Examples seen at each position.
    private var counts: [Int]
    private let senders: Int
    private let positions: Int
    private let width: Int

    /// Empty sums for `senders` senders over `positions` positions.
    init(senders: Int, positions: Int, width: Int) {
        sums = FloatBuffer(count: senders * positions * width)
        counts = [Int](repeating: 0, count: positions)
        self.senders = senders
        self.positions = positions
        self.width = width
    }

    /// The means of every sender's output over `prompts`, run `chunkSize` at a time.
    convenience init(model: TransformerModel, prompts: [[Int]], chunkSize: Int) throws {
        self.init(senders: model.graph.senders.count, positions: prompts.map(\.count).max() ?? 0, width: model.config.dModel)
        for start in stride(from: 0, to: prompts.count, by: chunkSize) {
            let pass = try model.forward(Array(prompts[start..<min(start + chunkSize, prompts.count)]), readout: .none, captureSenders: true)
            add(pass.senders!, layout: pass.layout)
        }
    }

    /// Adds the `[senders, T, d]` outputs of one batch laid out by `layout`.
    func add(_ outputs: FloatBuffer, layout: SequenceLayout) {
        let plane = layout.rows * width
        for r in 0..<layout.rows { counts[layout.positions[r]] += 1 }
        parallelFor(senders) { s in
            for r in 0..<layout.rows {
                axpy(self.sums.pointer + (s * self.positions + layout.positions[r]) * self.width, 1,
                     outputs.pointer + s * plane + r * self.width, self.width)
            }
        }
    }

    /// `[senders, T, d]` holding at each row the mean at its position.
    func expanded(to layout: SequenceLayout) -> FloatBuffer {
        let plane = layout.rows * width
        let out = FloatBuffer(count: senders * plane)
        parallelFor(senders) { s in
            for r in 0..<layout.rows {
                let p = layout.positions[r]
                let scale = 1 / Float(max(1, self.counts[p]))
                axpy(out.pointer + s * plane + r * self.width, scale, self.sums.pointer + (s * self.positions + p) * self.width, self.width)
            }
        }
        return out
    }
}

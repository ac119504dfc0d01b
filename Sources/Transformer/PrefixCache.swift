import Kernels

/// The keys and values every layer computed over the prompts' shared prefixes, which runs that
/// continue from them (`SequenceLayout.starts`) read instead of computing those positions again.
///
/// Where a pair's clean and corrupted prompts agree on their first tokens, the clean, corrupted,
/// interpolated and patched runs all agree there too (attention looks only back, and every sender's
/// clean and corrupted outputs are equal at those rows), so one run of the prefix serves them all.
public final class PrefixCache {
    /// Positions each example's prefix covers (0: none).
    public let lengths: [Int]
    /// Per example, the row of its position 0 in `keysValues` (unused for an empty prefix).
    let offsets: [Int]
    /// `[layers, P, 2·kvWidth]`: per layer and prefix row, its keys (after RoPE) then its values.
    let keysValues: FloatBuffer
    /// Rows of all prefixes together (P).
    let rows: Int
    let config: TransformerConfig

    /// Runs `model` over `prefixes` (one per example, possibly empty) and keeps every layer's keys and values.
    public init(model: TransformerModel, prefixes: [[Int]]) throws {
        config = model.config
        lengths = prefixes.map(\.count)
        var offsets: [Int] = [], rows = 0
        for n in lengths {
            offsets.append(rows)
            rows += n
        }
        self.offsets = offsets
        self.rows = rows
        let nonEmpty = prefixes.filter { !$0.isEmpty }
        if nonEmpty.isEmpty {
            keysValues = FloatBuffer(count: 0)
        } else {
            let pass = try model.forward(nonEmpty, readout: .none, captureKeysValues: true)
            keysValues = pass.keysValues!
        }
    }

    /// Layer `layer`'s prefix keys and values for a run over `layout`, whose example `b` is example
    /// `b % lengths.count` here (a run of several copies of the batch).
    func attention(layer: Int, layout: SequenceLayout) -> AttentionPrefix {
        let c = config, width = 2 * c.kvWidth, base = keysValues.pointer + layer * rows * width
        return AttentionPrefix(
            k: (0..<c.heads).map { HeadSlice(base + ($0 / c.groupSize) * c.headDim, stride: width) },
            v: (0..<c.heads).map { HeadSlice(base + c.kvWidth + ($0 / c.groupSize) * c.headDim, stride: width) },
            offsets: (0..<layout.count).map { offsets[$0 % offsets.count] })
    }
}

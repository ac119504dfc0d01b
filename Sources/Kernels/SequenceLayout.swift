/// How a batch of variable-length sequences is packed into rows.
///
/// Kernels never see padding: example `b` occupies rows `offsets[b] ..< offsets[b] + lengths[b]`
/// of every `[rows, channels]` activation, and row `r` is position `positions[r]` of its example.
/// This is the packed equivalent of a right-padded `[batch, maxLength]` batch.
public struct SequenceLayout: Sendable, Equatable {
    /// Tokens in each example.
    public let lengths: [Int]
    /// First row of each example.
    public let offsets: [Int]
    /// Position within its example of each row.
    public let positions: [Int]
    /// Example of each row.
    public let exampleOfRow: [Int]
    /// Start of each example's `[length, length]` attention-probability block (per head).
    public let attentionOffsets: [Int]
    /// Total rows (Σ lengths).
    public let rows: Int
    /// Σ lengths², the size of one head's attention probabilities.
    public let attentionSize: Int
    /// Longest example.
    public let maxLength: Int

    /// Lays out examples of the given lengths back to back.
    public init(lengths: [Int]) {
        precondition(lengths.allSatisfy { $0 > 0 }, "every sequence needs at least one token")
        self.lengths = lengths
        var offsets: [Int] = [], attention: [Int] = [], positions: [Int] = [], examples: [Int] = []
        var rows = 0, area = 0
        for (b, n) in lengths.enumerated() {
            offsets.append(rows)
            attention.append(area)
            positions.append(contentsOf: 0..<n)
            examples.append(contentsOf: repeatElement(b, count: n))
            rows += n
            area += n * n
        }
        self.offsets = offsets
        self.attentionOffsets = attention
        self.positions = positions
        self.exampleOfRow = examples
        self.rows = rows
        self.attentionSize = area
        self.maxLength = lengths.max() ?? 0
    }

    /// Number of examples.
    public var count: Int { lengths.count }

    /// Row of each example's last token.
    public var lastRows: [Int] { zip(offsets, lengths).map { $0 + $1 - 1 } }
}

/// How a batch of variable-length sequences is packed into rows.
///
/// Kernels never see padding: example `b` occupies rows `offsets[b] ..< offsets[b] + lengths[b]`
/// of every `[rows, channels]` activation, and row `r` is position `positions[r]` of its example.
/// This is the packed equivalent of a right-padded `[batch, maxLength]` batch.
///
/// A run may continue examples from a shared prefix (`starts`): example `b`'s rows are then positions
/// `starts[b] ..< starts[b] + lengths[b]`, and its attention also reads the keys and values of
/// positions `0 ..< starts[b]` from an `AttentionPrefix`.
public struct SequenceLayout: Sendable, Equatable {
    /// Tokens in each example.
    public let lengths: [Int]
    /// Position of each example's first row (positions before it come from a prefix); zeros for a
    /// run over whole sequences.
    public let starts: [Int]
    /// First row of each example.
    public let offsets: [Int]
    /// Position within its example of each row.
    public let positions: [Int]
    /// Example of each row.
    public let exampleOfRow: [Int]
    /// Start of each example's `[length, start + length]` attention-probability block (per head).
    public let attentionOffsets: [Int]
    /// Total rows (Σ lengths).
    public let rows: Int
    /// Σ length·(start + length), the size of one head's attention probabilities.
    public let attentionSize: Int
    /// Longest example.
    public let maxLength: Int

    /// Lays out examples of the given lengths back to back, each continuing from position
    /// `starts[b]` (nil: every example starts at position 0).
    public init(lengths: [Int], starts: [Int]? = nil) {
        precondition(lengths.allSatisfy { $0 > 0 }, "every sequence needs at least one token")
        let starts = starts ?? [Int](repeating: 0, count: lengths.count)
        precondition(starts.count == lengths.count && starts.allSatisfy { $0 >= 0 }, "one start (≥ 0) per sequence")
        self.lengths = lengths
        self.starts = starts
        var offsets: [Int] = [], attention: [Int] = [], positions: [Int] = [], examples: [Int] = []
        var rows = 0, area = 0
        for (b, (n, start)) in zip(lengths, starts).enumerated() {
            offsets.append(rows)
            attention.append(area)
            positions.append(contentsOf: start..<start + n)
            examples.append(contentsOf: repeatElement(b, count: n))
            rows += n
            area += n * (start + n)
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

    /// Whether some example continues from a prefix.
    public var continuesPrefixes: Bool { starts.contains { $0 > 0 } }

    /// This layout's examples `copies` times over, back to back (a batch of several runs of the same examples).
    public func repeated(_ copies: Int) -> SequenceLayout {
        SequenceLayout(lengths: Array((0..<copies).map { _ in lengths }.joined()), starts: Array((0..<copies).map { _ in starts }.joined()))
    }
}

import Kernels
import XCTest

/// Packing of variable-length sequences into rows.
final class SequenceLayoutTests: XCTestCase {
    func testLayoutOfAwkwardLengths() {
        let layout = SequenceLayout(lengths: [1, 7, 33])
        XCTAssertEqual(layout.count, 3)
        XCTAssertEqual(layout.rows, 41)
        XCTAssertEqual(layout.offsets, [0, 1, 8])
        XCTAssertEqual(layout.lastRows, [0, 7, 40])
        XCTAssertEqual(layout.positions, [0] + Array(0..<7) + Array(0..<33))
        XCTAssertEqual(layout.exampleOfRow, [0] + Array(repeating: 1, count: 7) + Array(repeating: 2, count: 33))
        XCTAssertEqual(layout.attentionOffsets, [0, 1, 50])
        XCTAssertEqual(layout.attentionSize, 1 + 49 + 1089)
        XCTAssertEqual(layout.maxLength, 33)
    }

    func testRowsAgreeWithOffsetsForRandomLengths() {
        var rng = SeededRandom(seed: 1300)
        let lengths = (0..<20).map { _ in rng.uniform(in: 1...40) }
        let layout = SequenceLayout(lengths: lengths)
        XCTAssertEqual(layout.rows, lengths.reduce(0, +))
        XCTAssertEqual(layout.attentionSize, lengths.reduce(0) { $0 + $1 * $1 })
        XCTAssertEqual(layout.maxLength, lengths.max())
        for r in 0..<layout.rows {
            let b = layout.exampleOfRow[r]
            XCTAssertEqual(layout.offsets[b] + layout.positions[r], r, "row \(r)")
            XCTAssertLessThan(layout.positions[r], lengths[b], "row \(r)")
        }
        for b in 1..<lengths.count {
            XCTAssertEqual(layout.offsets[b], layout.offsets[b - 1] + lengths[b - 1])
            XCTAssertEqual(layout.attentionOffsets[b], layout.attentionOffsets[b - 1] + lengths[b - 1] * lengths[b - 1])
            XCTAssertEqual(layout.lastRows[b], layout.offsets[b] + lengths[b] - 1)
        }
    }

    func testEqualityAndEmptyBatch() {
        XCTAssertEqual(SequenceLayout(lengths: [2, 3]), SequenceLayout(lengths: [2, 3]))
        XCTAssertNotEqual(SequenceLayout(lengths: [2, 3]), SequenceLayout(lengths: [3, 2]))
        let empty = SequenceLayout(lengths: [])
        XCTAssertEqual(empty.rows, 0)
        XCTAssertEqual(empty.attentionSize, 0)
        XCTAssertEqual(empty.maxLength, 0)
        XCTAssertEqual(empty.lastRows, [])
    }

    func testLayoutContinuingFromPrefixes() {
        let layout = SequenceLayout(lengths: [3, 1, 2], starts: [4, 0, 1])
        XCTAssertEqual(layout.rows, 6)
        XCTAssertEqual(layout.offsets, [0, 3, 4])
        XCTAssertEqual(layout.positions, [4, 5, 6, 0, 1, 2])
        XCTAssertEqual(layout.lastRows, [2, 3, 5])
        // Each example's attention block is [length, start + length].
        XCTAssertEqual(layout.attentionOffsets, [0, 21, 22])
        XCTAssertEqual(layout.attentionSize, 21 + 1 + 6)
        XCTAssertTrue(layout.continuesPrefixes)
        XCTAssertFalse(SequenceLayout(lengths: [3, 1]).continuesPrefixes)
        let twice = layout.repeated(2)
        XCTAssertEqual(twice.lengths, [3, 1, 2, 3, 1, 2])
        XCTAssertEqual(twice.starts, [4, 0, 1, 4, 0, 1])
        XCTAssertNotEqual(layout, SequenceLayout(lengths: [3, 1, 2]))
    }
}

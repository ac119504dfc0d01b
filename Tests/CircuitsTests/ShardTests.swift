import Circuits
import XCTest

/// How shards split pairs or edges and how their results merge.
final class ShardTests: XCTestCase {
    func testRangesTileTheItemsInOrder() throws {
        for total in [0, 1, 7, 100] {
            for count in 1...9 {
                let ranges = try (1...count).map { try Shard(index: $0, count: count).range(of: total) }
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, total)
                for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertLessThanOrEqual((ranges.map(\.count).max() ?? 0) - (ranges.map(\.count).min() ?? 0), 1)
            }
        }
        XCTAssertEqual(try Shard(parsing: "2/4"), try Shard(index: 2, count: 4))
        for bad in ["0/4", "5/4", "2", "a/b", "1/0", "-1/3"] { XCTAssertThrowsError(try Shard(parsing: bad), bad) }
    }

    /// Pair shards' sums divide by the pairs; edge shards add up; bad sets of shards are refused.
    func testMergeCombinesAndChecks() throws {
        func result(_ i: Int, _ n: Int, _ split: ShardResult.Split, total: Int, scores: [Float], arguments: [String] = ["x"]) throws -> ShardResult {
            let shard = try Shard(index: i, count: n)
            return ShardResult(shard: shard, split: split, method: "eap", arguments: arguments, range: shard.range(of: total), total: total,
                               scores: scores, seconds: 1)
        }
        // 4 pairs in two shards: sums 3 and 5 over pairs 0–1 and 2–3 → mean 2.
        XCTAssertEqual(try ShardResult.merge([result(2, 2, .pairs, total: 4, scores: [5, -1]), result(1, 2, .pairs, total: 4, scores: [3, 1])]),
                       [2, 0])
        XCTAssertEqual(try ShardResult.merge([result(1, 2, .edges, total: 2, scores: [7, 0]), result(2, 2, .edges, total: 2, scores: [0, -3])]),
                       [7, -3])
        XCTAssertThrowsError(try ShardResult.merge([result(1, 2, .pairs, total: 4, scores: [1, 1])]))
        XCTAssertThrowsError(try ShardResult.merge([result(1, 2, .pairs, total: 4, scores: [1, 1]), result(1, 2, .pairs, total: 4, scores: [1, 1])]))
        XCTAssertThrowsError(try ShardResult.merge([result(1, 2, .pairs, total: 4, scores: [1, 1]),
                                                    result(2, 2, .pairs, total: 4, scores: [1, 1], arguments: ["y"])]))
        var shifted = try result(2, 2, .pairs, total: 4, scores: [1, 1])
        shifted.range = 1..<4
        XCTAssertThrowsError(try ShardResult.merge([result(1, 2, .pairs, total: 4, scores: [1, 1]), shifted]))
        XCTAssertThrowsError(try ShardResult.merge([]))
    }
}

import Foundation
import Kernels
import XCTest

/// Ranges a `parallelChunks` body received, recorded under a lock.
private final class RangeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var ranges: [Range<Int>] = []

    func append(_ range: Range<Int>) {
        lock.lock()
        ranges.append(range)
        lock.unlock()
    }

    var sorted: [Range<Int>] {
        lock.lock()
        defer { lock.unlock() }
        return ranges.sorted { $0.lowerBound < $1.lowerBound }
    }
}

/// The work-splitting helpers run every index exactly once.
final class ParallelTests: XCTestCase {
    func testWorkerCountIsPositive() {
        XCTAssertGreaterThanOrEqual(Threading.workerCount, 1)
    }

    func testParallelForVisitsEveryIndexOnce() {
        for count in [0, 1, 2, 7, 1000, 100_003] {
            let visits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
            defer { visits.deallocate() }
            visits.initialize(repeating: 0, count: max(count, 1))
            parallelFor(count) { i in visits[i] += 1 }
            let wrong = (0..<count).filter { visits[$0] != 1 }
            XCTAssertTrue(wrong.isEmpty, "parallelFor(\(count)): \(wrong.count) indices not run exactly once, e.g. \(wrong.prefix(5))")
        }
    }

    func testParallelChunksCoverTheRangeWithDisjointChunks() {
        let workers = Threading.workerCount
        let cases: [(total: Int, minimumChunk: Int, oversubscription: Int)] = [
            (0, 1, 1), (1, 1, 1), (7, 1, 1), (7, 16, 1), (1000, 16, 1), (1000, 1, 4), (100_003, 4096, 2), (5000, 4096, 1),
        ]
        for (total, minimumChunk, oversubscription) in cases {
            let log = RangeLog()
            parallelChunks(total, minimumChunk: minimumChunk, oversubscription: oversubscription) { log.append($0) }
            let ranges = log.sorted, name = "parallelChunks(\(total), minimumChunk: \(minimumChunk), oversubscription: \(oversubscription))"
            XCTAssertEqual(ranges.first?.lowerBound ?? 0, 0, name)
            XCTAssertEqual(ranges.last?.upperBound ?? 0, total, name)
            XCTAssertTrue(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(name): \(ranges)")
            XCTAssertTrue(ranges.allSatisfy { !$0.isEmpty }, "\(name): \(ranges)")
            XCTAssertLessThanOrEqual(ranges.count, max(1, workers * oversubscription), name)
            if total >= minimumChunk {
                XCTAssertTrue(ranges.allSatisfy { $0.count >= minimumChunk }, "\(name): \(ranges)")
            } else {
                XCTAssertLessThanOrEqual(ranges.count, 1, name)
            }
        }
    }
}

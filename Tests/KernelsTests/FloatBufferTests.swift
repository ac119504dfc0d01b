@testable import Kernels
import XCTest

/// The aligned `Float` storage the kernels work on.
final class FloatBufferTests: XCTestCase {
    func testZeroedCopiedAndUninitializedBuffers() {
        let zeroed = FloatBuffer(count: 37)
        XCTAssertEqual(zeroed.count, 37)
        XCTAssertEqual(zeroed.array, [Float](repeating: 0, count: 37))

        let values: [Float] = [1, -2.5, .infinity, 3]
        let copy = FloatBuffer(values)
        XCTAssertEqual(copy.count, 4)
        XCTAssertEqual(copy.array, values)
        copy[1] = 7
        XCTAssertEqual(copy[1], 7)
        XCTAssertEqual(copy.pointer[1], 7)
        copy.zero()
        XCTAssertEqual(copy.array, [0, 0, 0, 0])

        let uninitialized = FloatBuffer(uninitializedCount: 5)
        XCTAssertEqual(uninitialized.count, 5)
        uninitialized.pointer.update(repeating: 2, count: 5)
        XCTAssertEqual(uninitialized.array, [2, 2, 2, 2, 2])
    }

    func testEmptyBuffersAndAlignment() {
        let empty = FloatBuffer(count: 0), emptyCopy = FloatBuffer([])
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.array, [])
        XCTAssertEqual(emptyCopy.array, [])
        empty.zero()
        for count in [0, 1, 7, 33, 1537] {
            XCTAssertEqual(Int(bitPattern: FloatBuffer(count: count).pointer) % 64, 0, "buffer of \(count) floats is 64-byte aligned")
        }
    }

    /// A freed large buffer serves a slightly larger request (the next chunk of a batch, a few rows
    /// longer), and past the budget the buffers returned longest ago are the ones freed.
    func testPoolReusesBuffersAcrossNearbySizesAndFreesTheOldestFirst() {
        let pool = LargeBufferPool(budget: 500 << 20)
        let (first, capacity) = pool.take(300 << 20)
        pool.give(first, capacity: capacity)
        let (again, capacityAgain) = pool.take((300 << 20) + (10 << 20))
        XCTAssertEqual(again, first, "a request 3 % larger reuses the freed buffer")
        XCTAssertEqual(capacityAgain, capacity)
        XCTAssertGreaterThanOrEqual(capacity, (300 << 20) + (10 << 20))
        XCTAssertLessThanOrEqual(capacity, (300 << 20) * 9 / 8, "rounding wastes at most an eighth")

        let (other, otherCapacity) = pool.take(250 << 20)
        XCTAssertNotEqual(other, again)
        pool.give(again, capacity: capacityAgain)
        pool.give(other, capacity: otherCapacity)  // over the budget: the older one goes
        XCTAssertEqual(pool.freeBytes, otherCapacity, "only the newest buffer is kept")
        let (newest, newestCapacity) = pool.take(250 << 20)
        XCTAssertEqual(newest, other)
        XCTAssertEqual(pool.freeBytes, 0)
        pool.give(newest, capacity: newestCapacity)
    }

    /// A request no kept buffer fits frees kept buffers, oldest first, only as far as the memory held (in
    /// use and kept) would pass the most ever in use at once; with room below that peak they stay.
    func testPoolHoldsNoMoreThanThePeakInUse() {
        let pool = LargeBufferPool(budget: 1 << 30)
        let (a, aCapacity) = pool.take(300 << 20)
        let (b, bCapacity) = pool.take(100 << 20)
        pool.give(a, capacity: aCapacity)
        pool.give(b, capacity: bCapacity)
        XCTAssertEqual(pool.peakInUseBytes, aCapacity + bCapacity)
        let (c, cCapacity) = pool.take(30 << 20)  // fits neither: the smaller kept buffer is more than twice as large
        XCTAssertNotEqual(c, a)
        XCTAssertNotEqual(c, b)
        XCTAssertEqual(pool.freeBytes, bCapacity, "the oldest kept buffer is freed: the memory held stays within the peak")
        let (d, dCapacity) = pool.take(90 << 20)
        XCTAssertEqual(d, b, "the buffer kept is reused")
        pool.give(c, capacity: cCapacity)
        let (e, eCapacity) = pool.take(10 << 20)  // below the peak there is room: the kept buffer c stays
        XCTAssertNotEqual(e, c)
        XCTAssertEqual(pool.freeBytes, cCapacity)
        for (buffer, capacity) in [(d, dCapacity), (e, eCapacity)] { pool.give(buffer, capacity: capacity) }
        XCTAssertEqual(pool.peakInUseBytes, aCapacity + bCapacity, "the peak is the most in use at once")
    }
}

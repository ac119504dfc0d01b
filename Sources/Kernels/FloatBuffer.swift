import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size, 64-byte aligned array of `Float` that kernels read and write through raw pointers.
///
/// Kernels take `UnsafeMutablePointer<Float>` (llm.c style); a `FloatBuffer` owns such memory and
/// frees it when the last reference goes away. It is a reference type so that a model's
/// activations can be handed between passes without copies.
public final class FloatBuffer: @unchecked Sendable {
    /// Number of floats.
    public let count: Int
    /// Start of the storage; valid for `count` floats while the buffer lives.
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, set to zero.
    public convenience init(count: Int) {
        self.init(uninitializedCount: count)
        pointer.update(repeating: 0, count: count)
    }

    /// Allocates `count` floats without clearing them, for buffers the caller fills completely.
    ///
    /// Buffers of 1 MB and more come from `LargeBufferPool`: they are reused across passes instead of
    /// being returned to the system and zeroed by it again, and on Linux they use transparent huge pages.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "FloatBuffer count must be non-negative")
        self.count = count
        let bytes = max(count, 1) * 4
        if bytes >= LargeBufferPool.threshold {
            let (raw, capacity) = LargeBufferPool.shared.take(bytes)
            pointer = raw.bindMemory(to: Float.self, capacity: capacity / 4)
            pooledBytes = capacity
        } else {
            pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Float.self, capacity: max(count, 1))
            pooledBytes = 0
        }
        parent = nil
    }

    /// Capacity of the pooled allocation behind `pointer`, or 0 for a small buffer.
    private let pooledBytes: Int
    /// The buffer this one is a window into (it owns the memory), or nil when this one owns it.
    private let parent: FloatBuffer?

    /// A window of `count` floats into `parent` starting at `offset`; it keeps `parent` alive.
    public init(viewing parent: FloatBuffer, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= parent.count, "view outside its parent buffer")
        self.count = count
        pointer = parent.pointer + offset
        pooledBytes = 0
        self.parent = parent
    }

    /// Allocates a buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit {
        if parent != nil { return }
        if pooledBytes > 0 {
            LargeBufferPool.shared.give(UnsafeMutableRawPointer(pointer), capacity: pooledBytes)
        } else {
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }

    /// Element access for tests and small bookkeeping; kernels use `pointer`.
    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }

    /// The contents as an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }
}

/// Keeps freed large buffers for reuse, up to a budget.
///
/// Forward and backward passes allocate the same few hundred megabytes again for every chunk of a
/// batch; handing that memory back to the system means it is unmapped, and zeroed page by page when
/// it is mapped again. Allocations are rounded up to one of sixteen sizes per doubling (whole 2 MB huge
/// pages) and matched best-fit. A request no kept buffer fits frees kept buffers (the oldest first) where
/// the memory held, in use and kept, would otherwise pass the most ever in use at once: kept buffers
/// never add to the process's peak, however many different sizes the chunks of a batch ask for one
/// after another.
final class LargeBufferPool: @unchecked Sendable {
    /// The process-wide pool.
    static let shared = LargeBufferPool()
    /// Buffers at least this large are pooled: a patched pass allocates a few `[T, d]` planes (3.5 MB at
    /// 100 IOI pairs) per layer, which malloc hands back to the system and gets zeroed again (a fifth of an
    /// ACDC edge trial's time when they were not pooled).
    static let threshold = 1 << 20
    /// Size of a transparent huge page on x86-64 and arm64 Linux.
    private static let hugePage = 2 << 20
    /// Most bytes kept while unused: by default half the cache budget, at most 4 GiB (a small budget asks
    /// for little memory, and pays for it by mapping buffers again). A masked gradient of 100 IOI pairs
    /// frees about 3 GB at once (every layer's activations, the sender differences and corrections);
    /// with 2 GiB they were unmapped and zeroed again by the system for the next one, 8 s of a 10 s
    /// gradient of ACDC's attributed trials.
    private let budget: Int

    /// A pool keeping at most `budget` bytes while unused.
    init(budget: Int = min(4 << 30, CacheSetting.bytes / 2)) {
        self.budget = budget
    }

    private let lock = NSLock()
    /// Free allocations: (capacity, pointer), oldest returned first.
    private var free: [(Int, UnsafeMutableRawPointer)] = []
    private(set) var freeBytes = 0
    /// Bytes of the pool's allocations handed out and not yet returned.
    private var inUseBytes = 0
    /// The most bytes ever in use at once.
    private(set) var peakInUseBytes = 0

    /// An allocation of at least `bytes` bytes: a kept one at most twice as large, else a new one, for
    /// which kept buffers are freed as far as the memory held would pass the peak in use.
    func take(_ bytes: Int) -> (UnsafeMutableRawPointer, Int) {
        // Sixteen sizes per doubling (whole huge pages): chunks of a batch differ by a few rows, and
        // a chunk a little longer than the last one still finds its buffers.
        let unit = max(Self.hugePage, (1 << (Int.bitWidth - (bytes - 1).leadingZeroBitCount)) / 16)
        let rounded = (bytes + unit - 1) / unit * unit
        lock.lock()
        let fit = free.indices.filter { free[$0].0 >= rounded && free[$0].0 <= 2 * rounded }.min { free[$0].0 < free[$1].0 }
        if let fit {
            let found = free.remove(at: fit)
            freeBytes -= found.0
            inUseBytes += found.0
            peakInUseBytes = max(peakInUseBytes, inUseBytes)
            lock.unlock()
            return (found.1, found.0)
        }
        inUseBytes += rounded
        peakInUseBytes = max(peakInUseBytes, inUseBytes)
        let evicted = removeOldest(inUseBytes + freeBytes - peakInUseBytes)
        lock.unlock()
        for pointer in evicted { pointer.deallocate() }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: Self.hugePage)
        #if canImport(Glibc)
        _ = madvise(raw, rounded, MADV_HUGEPAGE)
        #endif
        return (raw, rounded)
    }

    /// Returns an allocation; past the budget, the allocations returned longest ago are freed (the
    /// newest is the likeliest to be asked for again: the next chunk's or the next engine's run).
    func give(_ raw: UnsafeMutableRawPointer, capacity: Int) {
        lock.lock()
        free.append((capacity, raw))
        freeBytes += capacity
        inUseBytes -= capacity
        let evicted = removeOldest(freeBytes - budget)
        lock.unlock()
        for pointer in evicted { pointer.deallocate() }
    }

    /// Takes kept buffers out of the pool, oldest first, until they add up to `bytes` or none is left,
    /// for the caller to free once it has unlocked (called with the lock held).
    private func removeOldest(_ bytes: Int) -> [UnsafeMutableRawPointer] {
        var removed: [UnsafeMutableRawPointer] = [], removedBytes = 0
        while removedBytes < bytes, !free.isEmpty {
            let oldest = free.removeFirst()
            freeBytes -= oldest.0
            removedBytes += oldest.0
            removed.append(oldest.1)
        }
        return removed
    }
}

/// The process's memory setting for cached runs: `CIRCUITKIT_CACHE_GB` (GiB) or half the machine's memory.
public enum CacheSetting {
    /// The setting in bytes.
    public static var bytes: Int {
        if let text = ProcessInfo.processInfo.environment["CIRCUITKIT_CACHE_GB"], let gib = Double(text), gib >= 0 {
            return Int(gib * 1_073_741_824)
        }
        return Int(ProcessInfo.processInfo.physicalMemory / 2)
    }
}

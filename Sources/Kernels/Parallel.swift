import Foundation
import Synchronization

/// How many threads the kernels split work across.
public enum Threading {
    /// Worker threads: `CIRCUITKIT_THREADS` when set to a positive integer, else the number of
    /// active processors.
    public static let workerCount: Int = {
        if let text = ProcessInfo.processInfo.environment["CIRCUITKIT_THREADS"], let n = Int(text), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()
}

/// Runs `body(i)` for every `i` in `0..<count`, spread over the worker threads.
///
/// Iterations must write disjoint memory. With one worker, or one iteration, it runs inline, and so
/// does a call made from inside an iteration (no nested parallelism).
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 0 { return }
    if count == 1 || Threading.workerCount == 1 || WorkerPool.insideJob {
        for i in 0..<count { body(i) }
        return
    }
    WorkerPool.shared.run(count, body)
}

/// Splits `0..<total` into about `Threading.workerCount × oversubscription` contiguous chunks and
/// runs `body(range)` for each in parallel.
@inline(__always)
public func parallelChunks(_ total: Int, minimumChunk: Int = 1, oversubscription: Int = 1, _ body: (Range<Int>) -> Void) {
    if total <= 0 { return }
    let wanted = Threading.workerCount * oversubscription
    let chunks = max(1, min(wanted, total / max(1, minimumChunk)))
    parallelFor(chunks) { c in
        let lo = c * total / chunks
        let hi = (c + 1) * total / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// Persistent threads that run the iterations of `parallelFor`.
///
/// A kernel call is tens to hundreds of microseconds of work and a forward pass makes thousands of
/// them: waking sleeping threads for each (as `DispatchQueue.concurrentPerform` does) costs a
/// measurable share. Workers spin briefly after each job, so back-to-back calls find them awake,
/// then sleep on a condition variable, so an idle process uses no CPU.
final class WorkerPool: @unchecked Sendable {
    /// The process-wide pool, with `Threading.workerCount − 1` threads beside the caller's.
    static let shared = WorkerPool(threads: Threading.workerCount - 1)

    /// One `parallelFor` call: its iterations and who has finished them.
    private final class Job: @unchecked Sendable {
        let count: Int
        /// Set to nil by the caller once every iteration has finished; only read while claiming one.
        var body: ((Int) -> Void)?
        let next = Atomic<Int>(0)
        let remaining: Atomic<Int>

        init(count: Int, body: @escaping (Int) -> Void) {
            self.count = count
            self.body = body
            remaining = Atomic(count)
        }

        /// Claims and runs iterations until none are left.
        func drain() {
            pthread_setspecific(WorkerPool.insideKey, UnsafeRawPointer(bitPattern: 1))
            defer { pthread_setspecific(WorkerPool.insideKey, nil) }
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body!(i)
                remaining.subtract(1, ordering: .releasing)
            }
        }
    }

    /// Thread-specific flag, set while the thread runs iterations (a pthread key: kernels check it on
    /// every call, and a lookup in `Thread.threadDictionary` costs about a microsecond).
    private static let insideKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
    /// Whether the current thread is running an iteration.
    static var insideJob: Bool { pthread_getspecific(insideKey) != nil }

    /// How long a worker spins for the next job before sleeping, in seconds.
    private let spinSeconds = 0.0005
    /// Incremented for every job; workers spin on it.
    private let generation = Atomic<Int>(0)
    /// The job being run, guarded by `condition`.
    private var current: Job?
    private let condition = NSCondition()
    /// Serializes jobs submitted from different threads.
    private let submit = NSLock()

    private init(threads: Int) {
        for index in 0..<max(0, threads) {
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "circuitkit-worker-\(index)"
            thread.start()
        }
    }

    /// Runs `body` for `0..<count` on the pool and the calling thread; returns when all are done.
    func run(_ count: Int, _ body: (Int) -> Void) {
        submit.lock()
        defer { submit.unlock() }
        withoutActuallyEscaping(body) { escapable in
            let job = Job(count: count, body: escapable)
            condition.lock()
            current = job
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            job.drain()
            while job.remaining.load(ordering: .acquiring) > 0 {}
            condition.lock()
            current = nil
            condition.unlock()
            job.body = nil
        }
    }

    /// A worker's loop: wait (spinning, then sleeping) for a new job, then help drain it.
    private func work() {
        var seen = 0
        while true {
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(spinSeconds * 1e9)
            while generation.load(ordering: .acquiring) == seen && DispatchTime.now().uptimeNanoseconds < deadline {}
            condition.lock()
            while generation.load(ordering: .acquiring) == seen { condition.wait() }
            seen = generation.load(ordering: .acquiring)
            let job = current
            condition.unlock()
            job?.drain()
        }
    }
}

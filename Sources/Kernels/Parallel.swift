import Dispatch
import Foundation

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
/// Iterations must write disjoint memory. With one worker, or one iteration, it runs inline.
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 0 { return }
    if count == 1 || Threading.workerCount == 1 {
        for i in 0..<count { body(i) }
        return
    }
    // The kernels hand raw pointers to disjoint slices of one buffer to each iteration, which
    // Swift cannot prove Sendable; the disjointness contract above is what makes this safe.
    withoutActuallyEscaping(body) { escapable in
        let sendable = unsafeBitCast(escapable, to: (@Sendable (Int) -> Void).self)
        DispatchQueue.concurrentPerform(iterations: count, execute: sendable)
    }
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

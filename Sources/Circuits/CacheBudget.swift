import Foundation
import Kernels

/// The bytes that cached clean and corrupted runs (experiments' patching engines, masked gradients'
/// chunks) may hold together in one process.
///
/// Every experiment and masked gradient holds what it keeps from the one shared account and gives it
/// back when it is freed, so two experiments (the pairs a circuit was found on and fresh pairs) share
/// the budget instead of each taking all of it.
public final class CacheBudget: @unchecked Sendable {
    /// The process's account: `CIRCUITKIT_CACHE_GB` (GiB) or half the machine's memory.
    public static let shared = CacheBudget(bytes: CacheSetting.bytes)

    /// The most bytes the caches may hold together.
    public let total: Int
    private let lock = NSLock()
    private var held = 0

    /// An account of `bytes` bytes.
    public init(bytes: Int) { total = bytes }

    /// Bytes not held by any cache.
    public var available: Int { lock.withLock { max(0, total - held) } }

    /// Holds `bytes` if that many are available; false (holding nothing) otherwise.
    public func reserve(_ bytes: Int) -> Bool {
        lock.withLock {
            guard held + bytes <= total else { return false }
            held += bytes
            return true
        }
    }

    /// Holds `bytes` (a cache planned against `available` a moment ago), even past the total.
    public func hold(_ bytes: Int) { lock.withLock { held += bytes } }

    /// Gives back `bytes` held with `reserve` or `hold`.
    public func release(_ bytes: Int) { lock.withLock { held -= bytes } }
}

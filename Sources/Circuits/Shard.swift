import Foundation
import Transformer

/// One part of a run split over a job array: shard `index` of `count` (1-based, as `--shard 2/4`).
///
/// Gradient methods split the pairs (each shard sums its pairs' scores), exact patching splits the
/// edges (each shard measures its own); `ShardResult.merge` puts the parts back together.
public struct Shard: Sendable, Equatable, Codable, CustomStringConvertible {
    /// 1-based position among the shards.
    public let index: Int
    /// How many shards the run is split into.
    public let count: Int

    /// Shard `index` of `count`; both at least 1 and `index ≤ count`.
    public init(index: Int, count: Int) throws {
        guard count >= 1, (1...count).contains(index) else {
            throw ModelInputError("a shard is i/n with 1 ≤ i ≤ n, got \(index)/\(count)")
        }
        self.index = index
        self.count = count
    }

    /// Parses `i/n` (as job arrays number them from 1; `SLURM_ARRAY_TASK_ID`, or `JOB_COMPLETION_INDEX + 1`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw ModelInputError("a shard is written i/n (e.g. 2/4), got '\(text)'")
        }
        try self.init(index: index, count: count)
    }

    public var description: String { "\(index)/\(count)" }

    /// This shard's part of `total` items: contiguous, sizes differing by at most one, in order.
    public func range(of total: Int) -> Range<Int> {
        (index - 1) * total / count..<index * total / count
    }
}

/// What one shard of a run computed, as written to its partial result file.
public struct ShardResult: Codable, Sendable, Equatable {
    /// How the shards' scores combine into the run's.
    public enum Split: String, Codable, Sendable {
        /// Each shard scored every edge on its own pairs; `scores` are sums over those pairs, and the
        /// run's scores are their sum divided by the number of pairs.
        case pairs
        /// Each shard scored its own edges on every pair; the others are 0 and the run's scores are the sum.
        case edges
    }

    /// File format version.
    public var format: Int = 1
    public var shard: Shard
    public var split: Split
    /// Method name (`eap`, `eap-ig`, `exact`).
    public var method: String
    /// The command's arguments without `--shard`: every shard of one run has the same.
    public var arguments: [String]
    /// The pairs (`.pairs`) or the positions in the run's list of edges to patch (`.edges`) this shard covered.
    public var range: Range<Int>
    /// The run's number of pairs (`.pairs`) or of edges to patch (`.edges`).
    public var total: Int
    /// `[edges]` this shard's scores: sums over its pairs (`.pairs`) or its edges' effects (`.edges`).
    public var scores: [Float]
    /// Seconds the shard's method took.
    public var seconds: Double

    public init(shard: Shard, split: Split, method: String, arguments: [String], range: Range<Int>, total: Int, scores: [Float],
                seconds: Double) {
        self.shard = shard
        self.split = split
        self.method = method
        self.arguments = arguments
        self.range = range
        self.total = total
        self.scores = scores
        self.seconds = seconds
    }

    /// The run's scores from all its shards' results, in any order.
    ///
    /// Refuses results of different runs, missing or repeated shards, and shards whose ranges do not
    /// tile the pairs or edges. The sum is taken in Double in shard order, so the scores equal one
    /// run's up to float summation order.
    public static func merge(_ results: [ShardResult]) throws -> [Float] {
        guard let first = results.first else { throw ModelInputError("no shard results to merge") }
        let n = first.shard.count
        for result in results {
            guard result.format == first.format, result.arguments == first.arguments, result.method == first.method,
                  result.split == first.split, result.total == first.total, result.scores.count == first.scores.count,
                  result.shard.count == n else {
                throw ModelInputError("shard \(result.shard) is not from the same run as shard \(first.shard) (its command, method or sizes differ)")
            }
        }
        let ordered = results.sorted { $0.shard.index < $1.shard.index }
        let indices = ordered.map(\.shard.index)
        guard indices == Array(1...n) else {
            let missing = Set(1...n).subtracting(indices).sorted(), repeated = Dictionary(grouping: indices) { $0 }.filter { $1.count > 1 }.keys.sorted()
            throw ModelInputError("the run has \(n) shards; " + [missing.isEmpty ? nil : "missing \(missing.map { "\($0)/\(n)" }.joined(separator: ", "))",
                                                               repeated.isEmpty ? nil : "given twice: \(repeated.map { "\($0)/\(n)" }.joined(separator: ", "))"]
                .compactMap { $0 }.joined(separator: "; "))
        }
        for result in ordered where result.range != result.shard.range(of: first.total) {
            throw ModelInputError("shard \(result.shard) covers \(result.range), not its part \(result.shard.range(of: first.total)) of \(first.total)")
        }
        var sums = [Double](repeating: 0, count: first.scores.count)
        for result in ordered {
            for (e, score) in result.scores.enumerated() { sums[e] += Double(score) }
        }
        let scale = first.split == .pairs ? 1 / Double(first.total) : 1
        return sums.map { Float($0 * scale) }
    }
}

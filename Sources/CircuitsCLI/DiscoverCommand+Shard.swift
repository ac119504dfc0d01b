import Circuits
import Foundation
import Transformer

/// Sharded runs: `discover --shard I/N` computes one part and writes it; `circuits merge` puts the parts together.
extension DiscoverCommand {
    /// Parses `--shard` and checks it applies: eap and eap-ig split the pairs, exact splits the edges.
    static func shardOption(_ options: ParsedOptions, method: String) throws -> Shard? {
        guard let text = options.string("shard") else { return nil }
        guard ["eap", "eap-ig", "exact"].contains(method) else {
            throw UsageError(description: "--shard applies to --method eap, eap-ig and exact (their scores add up over pairs or edges), not \(method)")
        }
        if method != "exact", options.string("ablation") == "mean" {
            throw UsageError(description: "--shard splits the pairs, but mean ablation averages over all of them: use resample or zero ablation, or --method exact")
        }
        do { return try Shard(parsing: text) } catch { throw UsageError(description: "--shard: \(error)") }
    }

    /// Runs this shard's part of `method` and writes it to `url` (atomically): the sums of its pairs'
    /// scores for eap/eap-ig, the exact effects of its edges for exact.
    static func runShard(_ shard: Shard, method: DiscoveryMethod, setup: DiscoverySetup, arguments: [String], to url: URL) throws -> Int32 {
        let start = Date()
        let result: ShardResult
        if let exact = method as? ExactMethod {
            let chosen = exact.edges ?? Array(0..<setup.model.graph.edgeCount)
            let range = shard.range(of: chosen.count)
            guard chosen.count >= shard.count else {
                throw UsageError(description: "shard \(shard) gets no edges: \(chosen.count) edges cannot be split \(shard.count) ways")
            }
            note("shard \(shard): edges \(range.lowerBound + 1)–\(range.upperBound) of \(chosen.count)")
            guard case .scores(let scores) = try ExactMethod(edges: Array(chosen[range])).run(setup, progress: showProgress) else {
                preconditionFailure("exact patching scores edges")
            }
            result = ShardResult(shard: shard, split: .edges, method: method.name, arguments: recorded(arguments), range: range,
                                 total: chosen.count, scores: scores, seconds: Date().timeIntervalSince(start))
        } else {
            let range = shard.range(of: setup.pairs.count)
            guard setup.pairs.count >= shard.count else {
                throw UsageError(description: "shard \(shard) gets no pairs: \(setup.pairs.count) pairs cannot be split \(shard.count) ways")
            }
            note("shard \(shard): pairs \(range.lowerBound + 1)–\(range.upperBound) of \(setup.pairs.count)")
            let part = DiscoverySetup(model: setup.model, pairs: setup.pairs.slice(range), source: setup.source, metric: setup.metric,
                                      ablation: setup.ablation, progress: showProgress)
            guard case .scores(let mean) = try method.run(part, progress: showProgress) else { preconditionFailure("eap and eap-ig score edges") }
            result = ShardResult(shard: shard, split: .pairs, method: method.name, arguments: recorded(arguments), range: range,
                                 total: setup.pairs.count, scores: mean.map { $0 * Float(range.count) },
                                 seconds: Date().timeIntervalSince(start))
        }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try JSONEncoder().encode(result).write(to: url, options: .atomic)
        } catch {
            throw ModelFileError(url.path, "cannot write the shard's result (\(describeFileError(error)))")
        }
        note(String(format: "shard %@ done in %.1f s", shard.description, result.seconds))
        print("wrote \(url.path)")
        return 0
    }

    /// The arguments a merge re-runs with: without `--shard`, and with the paths of files and of
    /// `--out` made absolute, so the merge may run from another folder than the shards.
    private static func recorded(_ arguments: [String]) -> [String] {
        var kept: [String] = [], i = 0
        while i < arguments.count {
            let argument = arguments[i]
            i += 1
            if argument == "--shard" { i += 1; continue }
            if argument.hasPrefix("--shard=") { continue }
            kept.append(argument)
            guard ["--model", "--data", "--edges-from", "--out", "--mib-out"].contains(argument), i < arguments.count else { continue }
            let value = arguments[i]
            i += 1
            let isPath = argument == "--out" || argument == "--mib-out" || FileManager.default.fileExists(atPath: value)
            kept.append(isPath ? URL(fileURLWithPath: value).standardizedFileURL.path : value)
        }
        return kept
    }
}

/// The scores of a sharded run, merged: they stand in for the method when `circuits merge` runs discover.
struct MergedScores: DiscoveryMethod {
    let name: String
    let details: String
    let scores: [Float]
    /// Seconds the shards' methods took, added up.
    let seconds: Double

    func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        guard scores.count == setup.model.graph.edgeCount else {
            throw ModelInputError("the shards scored \(scores.count) edges; the model's graph has \(setup.model.graph.edgeCount)")
        }
        return .scores(scores)
    }
}

/// `circuits merge`: combines the shard results of one run and finishes it as `discover` would.
enum MergeCommand: Subcommand {
    static let name = "merge"
    static let summary = "Combine the shard results of a sharded discover run (--shard I/N) into its scores and circuit."
    static let usage = "SHARD.json... [--edges N | --threshold T | --target-faithfulness F] [--out DIR] [--name NAME] [--json]"
    /// Options that finish the run; given here, they replace those the shards were started with.
    static let options = DiscoverCommand.options.filter {
        ["edges", "greedy", "threshold", "target-faithfulness", "curve", "mib", "mib-out", "scores-out", "held-out", "out", "name", "top",
         "json", "render-timeout", "report", "compact"].contains($0.name)
    }

    static func run(_ options: ParsedOptions) throws -> Int32 {
        guard !options.positionals.isEmpty else { throw UsageError(description: "give the shard result files to merge") }
        let results = try options.positionals.map { path in
            let data = try readInputFile(URL(fileURLWithPath: path), as: "shard result")
            do { return try JSONDecoder().decode(ShardResult.self, from: data) } catch {
                throw ModelFileError(path, "not a shard result of `circuits discover --shard`")
            }
        }
        let scores = try ShardResult.merge(results)
        let first = results[0]
        let seconds = results.map(\.seconds).reduce(0, +)
        note(String(format: "merged %d shards of %@ (split by %@); their methods took %.1f s in all", results.count, first.method,
                    first.split.rawValue, seconds))
        let rerun = try ParsedOptions(first.arguments + options.optionArguments,
                                      specs: DiscoverCommand.options)
        let details = first.split == .pairs ? "\(results.count) shards of the pairs" : "\(results.count) shards of \(first.total) edges"
        return try DiscoverCommand.run(rerun, merged: MergedScores(name: first.method, details: details, scores: scores, seconds: seconds))
    }
}

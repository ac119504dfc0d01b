import Transformer

/// A chunk's clean and corrupted prompts run as continuations of the prefix each pair shares.
///
/// Before a pair's first differing token its clean and corrupted runs agree exactly (attention looks
/// only back), and so does any run that mixes their senders or interpolates their embeddings, so
/// under resample ablation the prefix is run once (`PrefixCache`) and every other run covers only
/// the tokens after it. The rows left out are those whose sender differences are exactly zero.
struct SharedPrefixes {
    /// Every layer's keys and values over the prefixes.
    let cache: PrefixCache
    /// Each pair's clean tokens after its shared prefix.
    let clean: [[Int]]
    /// Each pair's corrupted tokens after its shared prefix.
    let corrupt: [[Int]]

    /// Runs the prefixes of `clean`/`corrupt` (pairwise of equal length).
    init(model: TransformerModel, clean: [[Int]], corrupt: [[Int]]) throws {
        let lengths = Self.lengths(clean: clean, corrupt: corrupt)
        cache = try PrefixCache(model: model, prefixes: zip(clean, lengths).map { Array($0.prefix($1)) })
        self.clean = zip(clean, lengths).map { Array($0.dropFirst($1)) }
        self.corrupt = zip(corrupt, lengths).map { Array($0.dropFirst($1)) }
    }

    /// Tokens each pair's prompts share at their start, leaving at least the last token (whose
    /// logits are read) to the runs.
    static func lengths(clean: [[Int]], corrupt: [[Int]]) -> [Int] {
        zip(clean, corrupt).map { a, b in min(a.indices.first { a[$0] != b[$0] } ?? a.count, a.count - 1) }
    }
}

extension PairBatch {
    /// Tokens each pair's prompts share at their start, leaving at least the last token to the runs
    /// (what `SharedPrefixes` runs once).
    public var sharedPrefixLengths: [Int] { SharedPrefixes.lengths(clean: clean, corrupt: corrupt) }
}

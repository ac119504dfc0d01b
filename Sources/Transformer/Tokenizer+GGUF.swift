import Foundation

extension Tokenizer {
    /// GGUF `tokenizer.ggml.pre` values this tokenizer reproduces, and their pre-tokenizers.
    static let ggufPreTokenizers: [String: PreTokenizer] = ["gpt2": .gpt2, "gpt-2": .gpt2, "smollm": .smollm]

    /// Loads the vocabulary embedded in a GGUF file's `tokenizer.ggml.*` metadata.
    ///
    /// Requires `tokenizer.ggml.model = gpt2` (byte-level BPE) and a `tokenizer.ggml.pre` listed in
    /// `ggufPreTokenizers`. Control (type 3) and user-defined (type 4) tokens are matched whole.
    public convenience init(gguf: GGUFFile) throws {
        let path = gguf.path
        let model = gguf.metadata["tokenizer.ggml.model"]?.stringValue
        guard model == "gpt2" else {
            throw ModelFileError(path, "tokenizer.ggml.model is \(model.map { quoted($0) } ?? "missing"); supported: gpt2 (byte-level BPE)")
        }
        let supported = Self.ggufPreTokenizers.keys.sorted().joined(separator: ", ")
        guard let pre = gguf.metadata["tokenizer.ggml.pre"]?.stringValue else {
            throw ModelFileError(path, "tokenizer.ggml.pre is missing; supported: \(supported)")
        }
        guard let preTokenizer = Self.ggufPreTokenizers[pre] else {
            throw ModelFileError(path, "unsupported pre-tokenizer tokenizer.ggml.pre = \(quoted(pre)); supported: \(supported)")
        }
        let tokens = try gguf.requireStrings("tokenizer.ggml.tokens")
        let location = { (i: Int) in "tokenizer.ggml.merges[\(i)]" }
        let merges = try Self.parseMerges(try gguf.requireStrings("tokenizer.ggml.merges"), source: path, location: location)

        var specials: [String] = []
        if let types = gguf.metadata["tokenizer.ggml.token_type"] {
            guard let kinds = types.arrayValue?.map(\.intValue), kinds.count == tokens.count else {
                throw ModelFileError(path, "tokenizer.ggml.token_type is not \(tokens.count) integers (one per token)")
            }
            specials = zip(tokens, kinds).filter { $0.1 == 3 || $0.1 == 4 }.map(\.0)
        }
        try self.init(tokens: tokens, merges: merges, preTokenizer: preTokenizer, specialTokens: specials,
                      source: path, mergeLocation: location)
    }
}

import Foundation

extension Tokenizer {
    /// Loads a GPT-2 style vocabulary: `vocab.json` (token → id) and `merges.txt` (one `a b` merge a
    /// line, highest priority first, an optional `#version` line).
    ///
    /// Those files do not record a pre-tokenizer, so it is given (GPT-2's by default). As for HF's
    /// `GPT2TokenizerFast`, `<|endoftext|>` is the special token when the vocabulary has it.
    public convenience init(vocabJSON: URL, mergesTXT: URL, preTokenizer: PreTokenizer = .gpt2) throws {
        let vocabulary = try Self.decodeJSON([String: Int].self, from: vocabJSON)
        let tokens = try Self.denseTokens(vocabulary, source: vocabJSON.path)

        let path = mergesTXT.path
        let text = String(decoding: try readInputFile(mergesTXT), as: UTF8.self)
        var lines: [String] = []
        var lineNumbers: [Int] = []
        // Lines end in LF or CRLF; split on bytes, as a CRLF pair is a single Character.
        var rows = text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false)
        if rows.last?.isEmpty == true { rows.removeLast() }
        for (index, row) in rows.enumerated() {
            let line = String(decoding: row.last == 0x0D ? row.dropLast() : row[...], as: UTF8.self)
            if line.hasPrefix("#version") { continue }
            lines.append(line)
            lineNumbers.append(index + 1)
        }
        let location = { (i: Int) in "line \(lineNumbers[i])" }
        let merges = try Self.parseMerges(lines, source: path, location: location)
        let specials = tokens.contains("<|endoftext|>") ? ["<|endoftext|>"] : []
        try self.init(tokens: tokens, merges: merges, preTokenizer: preTokenizer, specialTokens: specials,
                      source: path, mergeLocation: location)
    }

    /// Loads an HF `tokenizer.json` with a byte-level BPE model.
    ///
    /// Supported: no normalizer; pre-tokenizer `ByteLevel(add_prefix_space: false)` (`gpt2`) or
    /// `Sequence[Digits(individual_digits: true), ByteLevel(add_prefix_space: false)]` (`smollm`);
    /// a ByteLevel (or no) decoder; added tokens without strip or single-word options, all matched
    /// whole. The post-processor is ignored: no special tokens are added. Anything else is an error
    /// naming the file.
    public convenience init(tokenizerJSON: URL) throws {
        let path = tokenizerJSON.path
        let file = try Self.decodeJSON(TokenizerJSON.self, from: tokenizerJSON)
        let model = file.model
        if let type = model.type, type != "BPE" {
            throw ModelFileError(path, "model type \(quoted(type)) is not supported (supported: BPE)")
        }
        let unsupported = [
            model.dropout != nil ? "dropout" : nil,
            model.continuingSubwordPrefix?.isEmpty == false ? "continuing_subword_prefix" : nil,
            model.endOfWordSuffix?.isEmpty == false ? "end_of_word_suffix" : nil,
            model.byteFallback == true ? "byte_fallback" : nil,
            model.ignoreMerges == true ? "ignore_merges" : nil,
        ].compactMap { $0 }
        guard unsupported.isEmpty else {
            throw ModelFileError(path, "BPE options not supported: \(unsupported.joined(separator: ", "))")
        }
        if let normalizer = file.normalizer {
            throw ModelFileError(path, "normalizer \(normalizer.type ?? "?") is not supported (byte-level BPE uses none)")
        }
        if let decoder = file.decoder, decoder.type != "ByteLevel" {
            throw ModelFileError(path, "decoder \(decoder.type ?? "?") is not supported (supported: ByteLevel)")
        }
        guard let preTokenizer = file.preTokenizer.flatMap(Self.preTokenizer(of:)) else {
            throw ModelFileError(path, "pre_tokenizer \(file.preTokenizer?.summary ?? "null") is not supported; supported: "
                + "ByteLevel(add_prefix_space: false) (gpt2), "
                + "Sequence[Digits(individual_digits: true), ByteLevel(add_prefix_space: false)] (smollm)")
        }

        var vocabulary = model.vocab
        var specials: [String] = []
        let byID = Dictionary(model.vocab.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        for added in file.addedTokens ?? [] {
            if added.lstrip == true || added.rstrip == true || added.singleWord == true {
                throw ModelFileError(path, "added token \(quoted(added.content)): lstrip, rstrip and single_word are not supported")
            }
            if let other = byID[added.id], other != added.content {
                throw ModelFileError(path, "added token \(quoted(added.content)) has id \(added.id), which the vocabulary gives to \(quoted(other))")
            }
            vocabulary[added.content] = added.id
            specials.append(added.content)
        }
        let tokens = try Self.denseTokens(vocabulary, source: path)
        let merges = try model.merges.enumerated().map { i, merge in
            switch merge {
            case .line(let line):
                return try Self.parseMerges([line], source: path) { _ in "model.merges[\(i)]" }[0]
            case .pair(let pair):
                guard pair.count == 2 else {
                    throw ModelFileError(path, "model.merges[\(i)] has \(pair.count) tokens, expected 2")
                }
                return (pair[0], pair[1])
            }
        }
        try self.init(tokens: tokens, merges: merges, preTokenizer: preTokenizer, specialTokens: specials,
                      source: path) { "model.merges[\($0)]" }
    }

    /// The pre-tokenizer a tokenizer.json `pre_tokenizer` describes, if supported.
    private static func preTokenizer(of component: TokenizerJSON.Component) -> PreTokenizer? {
        func isGPT2ByteLevel(_ c: TokenizerJSON.Component) -> Bool {
            c.type == "ByteLevel" && c.addPrefixSpace == false && c.useRegex != false
        }
        if isGPT2ByteLevel(component) { return .gpt2 }
        if component.type == "Sequence", let parts = component.pretokenizers, parts.count == 2,
           parts[0].type == "Digits", parts[0].individualDigits == true, isGPT2ByteLevel(parts[1]) {
            return .smollm
        }
        return nil
    }

    /// Token strings indexed by id, from a token → id map whose ids must be exactly 0..<count.
    private static func denseTokens(_ vocabulary: [String: Int], source: String) throws -> [String] {
        var tokens = [String?](repeating: nil, count: vocabulary.count)
        for (token, id) in vocabulary {
            guard tokens.indices.contains(id) else {
                throw ModelFileError(source, "token \(quoted(token)) has id \(id), outside 0..<\(vocabulary.count) (ids must be contiguous)")
            }
            if let other = tokens[id] {
                throw ModelFileError(source, "tokens \(quoted(other)) and \(quoted(token)) share id \(id)")
            }
            tokens[id] = token
        }
        return tokens.map { $0! }  // every slot is filled: count ids, all distinct, all in range
    }

    /// Decodes the JSON file at `url`, turning read and format problems into `ModelFileError`s.
    private static func decodeJSON<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        try Transformer.decodeJSON(type, from: readInputFile(url), path: url.path)
    }
}

/// The parts of an HF `tokenizer.json` the byte-level BPE loader reads.
private struct TokenizerJSON: Decodable {
    /// A normalizer, pre-tokenizer or decoder entry.
    struct Component: Decodable {
        let type: String?
        let addPrefixSpace: Bool?
        let useRegex: Bool?
        let individualDigits: Bool?
        let pretokenizers: [Component]?

        enum CodingKeys: String, CodingKey {
            case type, pretokenizers
            case addPrefixSpace = "add_prefix_space", useRegex = "use_regex", individualDigits = "individual_digits"
        }

        /// `Type(options)` for error messages.
        var summary: String {
            let options = [
                addPrefixSpace.map { "add_prefix_space: \($0)" },
                useRegex.map { "use_regex: \($0)" },
                individualDigits.map { "individual_digits: \($0)" },
                pretokenizers.map { "[" + $0.map(\.summary).joined(separator: ", ") + "]" },
            ].compactMap { $0 }
            return (type ?? "?") + (options.isEmpty ? "" : "(\(options.joined(separator: ", ")))")
        }
    }

    struct AddedToken: Decodable {
        let id: Int
        let content: String
        let singleWord: Bool?
        let lstrip: Bool?
        let rstrip: Bool?

        enum CodingKeys: String, CodingKey {
            case id, content, lstrip, rstrip
            case singleWord = "single_word"
        }
    }

    /// A merge, stored as `"a b"` (older files) or `["a", "b"]`.
    enum MergeEntry: Decodable {
        case line(String)
        case pair([String])

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let line = try? container.decode(String.self) {
                self = .line(line)
            } else {
                self = .pair(try container.decode([String].self))
            }
        }
    }

    struct Model: Decodable {
        let type: String?
        let vocab: [String: Int]
        let merges: [MergeEntry]
        let dropout: Double?
        let continuingSubwordPrefix: String?
        let endOfWordSuffix: String?
        let byteFallback: Bool?
        let ignoreMerges: Bool?

        enum CodingKeys: String, CodingKey {
            case type, vocab, merges, dropout
            case continuingSubwordPrefix = "continuing_subword_prefix", endOfWordSuffix = "end_of_word_suffix"
            case byteFallback = "byte_fallback", ignoreMerges = "ignore_merges"
        }
    }

    let addedTokens: [AddedToken]?
    let normalizer: Component?
    let preTokenizer: Component?
    let decoder: Component?
    let model: Model

    enum CodingKeys: String, CodingKey {
        case normalizer, decoder, model
        case addedTokens = "added_tokens", preTokenizer = "pre_tokenizer"
    }
}

import Foundation

/// A byte-level BPE tokenizer (GPT-2 and SmolLM2 vocabularies) that reproduces HF `tokenizers`.
///
/// Encoding: special tokens found in the text are matched whole first (leftmost, longest first,
/// as HF does for added tokens); the text between them is cut into pre-tokens (`PreTokenizer`);
/// each pre-token's UTF-8 bytes are mapped to GPT-2's byte alphabet and merged by rank. No BOS or
/// other special token is added. A byte whose single-byte token the vocabulary lacks is dropped,
/// as HF's BPE without an unknown token does (SmolLM2 lacks 21 control and invalid-UTF-8 bytes).
/// Decoding maps tokens back to bytes and decodes them as UTF-8, replacing invalid sequences with
/// U+FFFD; special tokens decode to their text (HF's `skip_special_tokens=False`).
///
/// The tokenizer is immutable after `init`; the per-pre-token BPE memo is guarded by a lock, so
/// one instance can encode from many threads.
public final class Tokenizer: Sendable {
    /// The pre-tokenizer this vocabulary was trained with.
    public let preTokenizer: PreTokenizer
    /// Token strings in the vocabulary's byte-level form (`ĠMary`), indexed by id.
    public let tokens: [String]
    /// Ids of the special tokens matched whole in text, by token string.
    public let specialTokenIDs: [String: Int]

    private let tokenIDs: [String: Int]
    /// The merge of each adjacent id pair, keyed by `left << 32 | right`.
    private let merges: [UInt64: Merge]
    /// The id of each byte's single-character token, or -1 when the vocabulary lacks it.
    private let byteTokenIDs: [Int]
    /// Each token's bytes, as the ByteLevel decoder produces them.
    private let tokenBytes: [[UInt8]]
    /// Special tokens as UTF-8, longest first, with their ids.
    private let specials: [(bytes: [UInt8], id: Int)]
    /// Whether a byte starts some special token.
    private let specialLeadBytes: [Bool]
    private let cache = BPECache()

    /// A merge rule: its priority (lower merges first) and the id of the merged token.
    private struct Merge {
        let rank: Int32
        let id: Int32
    }

    /// Creates a tokenizer from token strings (index = id, byte-level form), merges (`"Ġ t"`,
    /// highest priority first), the pre-tokenizer, and the special tokens to match whole.
    ///
    /// Inconsistent input (a merge naming an unknown token, a special token missing from the
    /// vocabulary) throws a `ModelFileError` whose path is `tokenizer`.
    public convenience init(tokens: [String], merges: [String], preTokenizer: PreTokenizer, specialTokens: [String]) throws {
        let location = { (i: Int) in "merges[\(i)]" }
        try self.init(tokens: tokens, merges: try Self.parseMerges(merges, source: "tokenizer", location: location),
                      preTokenizer: preTokenizer, specialTokens: specialTokens, source: "tokenizer", mergeLocation: location)
    }

    /// Creates a tokenizer, naming `source` (a file path) and `mergeLocation(i)` (where merge `i`
    /// comes from) in errors.
    init(tokens: [String], merges: [(String, String)], preTokenizer: PreTokenizer, specialTokens: [String],
         source: String, mergeLocation: (Int) -> String) throws {
        guard !tokens.isEmpty else { throw ModelFileError(source, "empty vocabulary") }
        var tokenIDs: [String: Int] = [:]
        tokenIDs.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { tokenIDs[token] = id }  // a repeated token keeps its last id, as in HF

        var mergeTable: [UInt64: Merge] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, (left, right)) in merges.enumerated() {
            guard let leftID = tokenIDs[left] else {
                throw ModelFileError(source, "\(mergeLocation(rank)) (\(quoted(left + " " + right))) names unknown token \(quoted(left))")
            }
            guard let rightID = tokenIDs[right] else {
                throw ModelFileError(source, "\(mergeLocation(rank)) (\(quoted(left + " " + right))) names unknown token \(quoted(right))")
            }
            guard let mergedID = tokenIDs[left + right] else {
                throw ModelFileError(source, "\(mergeLocation(rank)) (\(quoted(left + " " + right))) makes \(quoted(left + right)), which is not in the vocabulary")
            }
            mergeTable[Self.pairKey(leftID, rightID)] = Merge(rank: Int32(rank), id: Int32(mergedID))
        }

        var specialTokenIDs: [String: Int] = [:]
        for token in specialTokens {
            guard !token.isEmpty else { throw ModelFileError(source, "empty special token") }
            guard let id = tokenIDs[token] else {
                throw ModelFileError(source, "special token \(quoted(token)) is not in the vocabulary")
            }
            specialTokenIDs[token] = id
        }
        let specials = specialTokenIDs.map { (bytes: Array($0.key.utf8), id: $0.value) }
            .sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        var leadBytes = [Bool](repeating: false, count: 256)
        for special in specials { leadBytes[Int(special.bytes[0])] = true }

        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.specialTokenIDs = specialTokenIDs
        self.tokenIDs = tokenIDs
        self.merges = mergeTable
        self.byteTokenIDs = ByteLevel.characters.map { tokenIDs[String($0)] ?? -1 }
        self.tokenBytes = tokens.map(ByteLevel.bytes(of:))
        self.specials = specials
        self.specialLeadBytes = leadBytes
    }

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// The token ids of `text`.
    public func encode(_ text: String) -> [Int] {
        let bytes = Array(text.utf8)
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count / 3 + 1)
        var pieces: [Range<Int>] = []
        var start = 0
        var i = 0
        while i < bytes.count {
            if specialLeadBytes[Int(bytes[i])], let special = special(at: i, in: bytes) {
                encodeText(bytes, start..<i, pieces: &pieces, into: &ids)
                ids.append(special.id)
                i += special.bytes.count
                start = i
            } else {
                i += 1
            }
        }
        encodeText(bytes, start..<bytes.count, pieces: &pieces, into: &ids)
        return ids
    }

    /// The text of `ids`; ids outside the vocabulary are skipped, as HF does.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where tokens.indices.contains(id) { bytes += tokenBytes[id] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The decoded text of one token, e.g. `" Mary"` (U+FFFD where it holds part of a character;
    /// empty for an id outside the vocabulary).
    public func tokenText(_ id: Int) -> String { decode([id]) }

    /// The id of a vocabulary entry given in byte-level form (`"ĠMary"`), if present.
    public func id(forToken token: String) -> Int? { tokenIDs[token] }

    /// The longest special token at byte `i`, if any.
    private func special(at i: Int, in bytes: [UInt8]) -> (bytes: [UInt8], id: Int)? {
        specials.first { special in
            special.bytes.count <= bytes.count - i
                && special.bytes.indices.allSatisfy { bytes[i + $0] == special.bytes[$0] }
        }
    }

    /// Pre-tokenizes `bytes[range]` and appends each pre-token's BPE ids.
    private func encodeText(_ bytes: [UInt8], _ range: Range<Int>, pieces: inout [Range<Int>], into ids: inout [Int]) {
        guard !range.isEmpty else { return }
        pieces.removeAll(keepingCapacity: true)
        preTokenizer.split(bytes, range, into: &pieces)
        for piece in pieces {
            if piece.count == 1 {
                let id = byteTokenIDs[Int(bytes[piece.lowerBound])]
                if id >= 0 { ids.append(id) }
                continue
            }
            let key = Array(bytes[piece])
            if let cached = cache[key] {
                ids += cached
            } else {
                let merged = bpe(key)
                if key.count <= BPECache.maximumKeyLength { cache[key] = merged }
                ids += merged
            }
        }
    }

    /// Merges the byte tokens of one pre-token, as HF's `Word::merge_all` does: repeatedly apply
    /// the queued merge of lowest rank (leftmost first among equal ranks), skipping queue entries
    /// that a previous merge made stale.
    private func bpe(_ bytes: [UInt8]) -> [Int] {
        // Bytes missing from the vocabulary are dropped (HF's BPE without an unknown token).
        var symbols = bytes.map { byteTokenIDs[Int($0)] }.filter { $0 >= 0 }
        let n = symbols.count
        guard n > 1 else { return symbols }
        var previous = Array(-1..<(n - 1))
        var next = Array(1...n)
        next[n - 1] = -1
        var removed = [Bool](repeating: false, count: n)
        var queue = MergeQueue()
        for i in 0..<(n - 1) {
            if let merge = merges[Self.pairKey(symbols[i], symbols[i + 1])] {
                queue.push(.init(rank: merge.rank, position: Int32(i), id: merge.id))
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            guard !removed[position], next[position] >= 0 else { continue }
            let right = next[position]
            guard let current = merges[Self.pairKey(symbols[position], symbols[right])], current.id == top.id else { continue }
            symbols[position] = Int(top.id)
            removed[right] = true
            next[position] = next[right]
            if next[right] >= 0 { previous[next[right]] = position }
            if previous[position] >= 0, let merge = merges[Self.pairKey(symbols[previous[position]], symbols[position])] {
                queue.push(.init(rank: merge.rank, position: Int32(previous[position]), id: merge.id))
            }
            if next[position] >= 0, let merge = merges[Self.pairKey(symbols[position], symbols[next[position]])] {
                queue.push(.init(rank: merge.rank, position: top.position, id: merge.id))
            }
        }
        return (0..<n).compactMap { removed[$0] ? nil : symbols[$0] }
    }

    private static func pairKey(_ left: Int, _ right: Int) -> UInt64 { UInt64(left) << 32 | UInt64(right) }

    /// Splits merge lines (`"Ġ t"`) into their two tokens; a line that is not exactly two tokens
    /// separated by one space is an error at `location(i)`.
    static func parseMerges(_ lines: [String], source: String, location: (Int) -> String) throws -> [(String, String)] {
        try lines.enumerated().map { i, line in
            let parts = line.utf8.split(separator: 0x20, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ModelFileError(source, "\(location(i)) \(quoted(line)) is not two tokens separated by a space")
            }
            return (String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self))
        }
    }
}

/// GPT-2's reversible map between bytes and printable characters.
enum ByteLevel {
    /// The character standing for each byte: printable Latin-1 bytes stand for themselves, the
    /// others for U+0100 onwards, in byte order.
    static let characters: [Unicode.Scalar] = {
        var shifted: UInt32 = 0
        return (0..<256).map { (byte: UInt32) -> Unicode.Scalar in
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                return Unicode.Scalar(byte)!
            }
            shifted += 1
            return Unicode.Scalar(0xFF + shifted)!
        }
    }()

    /// The byte each character stands for, indexed by scalar value (-1: not a byte character).
    static let byteOfCharacter: [Int] = {
        var table = [Int](repeating: -1, count: 0x100 + 68)
        for (byte, character) in characters.enumerated() { table[Int(character.value)] = byte }
        return table
    }()

    /// The bytes of a token as HF's ByteLevel decoder yields them: the mapped bytes when every
    /// character is a byte character, else the token's own UTF-8 (special tokens).
    static func bytes(of token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            let index = Int(scalar.value)
            guard index < byteOfCharacter.count, byteOfCharacter[index] >= 0 else { return Array(token.utf8) }
            bytes.append(UInt8(byteOfCharacter[index]))
        }
        return bytes
    }
}

/// A min-heap of pending merges ordered by rank, then position.
private struct MergeQueue {
    struct Entry {
        let rank: Int32
        let position: Int32
        let id: Int32

        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var heap: [Entry] = []

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < heap.count && heap[left].precedes(heap[best]) { best = left }
                if right < heap.count && heap[right].precedes(heap[best]) { best = right }
                if best == parent { break }
                heap.swapAt(parent, best)
                parent = best
            }
        }
        return first
    }
}

/// The memo of BPE results per pre-token, shared by all threads using one tokenizer.
///
/// Like HF's, it stops growing at a fixed capacity and skips long pre-tokens, so arbitrary text
/// cannot exhaust memory.
private final class BPECache: @unchecked Sendable {
    /// Longest pre-token (in bytes) worth remembering.
    static let maximumKeyLength = 256
    private static let capacity = 100_000
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int]] = [:]

    subscript(key: [UInt8]) -> [Int]? {
        get { lock.withLock { entries[key] } }
        set {
            lock.withLock {
                if entries.count < Self.capacity { entries[key] = newValue }
            }
        }
    }
}

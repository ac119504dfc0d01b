/// How text is cut into pre-tokens before byte-level BPE merges them.
///
/// Both variants reproduce HF `tokenizers` exactly. `gpt2` is `ByteLevel(use_regex=True)`: the regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` matched on
/// Unicode scalars (`\s` is White_Space, `\p{L}` and `\p{N}` the letter and number categories).
/// `smollm` first isolates every numeric scalar (`Digits(individual_digits=True)`, Rust's
/// `char::is_numeric`, i.e. categories Nd, Nl, No) and then applies the GPT-2 split to each piece.
public enum PreTokenizer: String, Sendable, Codable, CaseIterable {
    /// GPT-2's byte-level regex split.
    case gpt2
    /// SmolLM2's: every digit its own pre-token, then the GPT-2 split.
    case smollm

    /// Splits the valid UTF-8 `bytes[range]` into pre-tokens, appended to `pieces` as byte ranges.
    func split(_ bytes: [UInt8], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let text = ScalarText(bytes, range)
        switch self {
        case .gpt2:
            text.splitGPT2(0..<text.count, into: &pieces)
        case .smollm:
            var start = 0
            for i in 0..<text.count where text.classes[i] == .number {
                text.splitGPT2(start..<i, into: &pieces)
                pieces.append(text.bytes(i..<i + 1))
                start = i + 1
            }
            text.splitGPT2(start..<text.count, into: &pieces)
        }
    }
}

/// The regex classes a scalar can fall in; they partition all scalars.
enum ScalarClass: UInt8 {
    case letter, number, space, other

    /// Classes of the ASCII scalars, looked up without Unicode property queries.
    static let ascii: [ScalarClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    /// The class of `scalar`: `\s` (White_Space), `\p{L}`, `\p{N}`, or anything else.
    static func classify(_ scalar: Unicode.Scalar) -> ScalarClass {
        let properties = scalar.properties
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}

/// A stretch of UTF-8 text decoded into scalars with their classes and byte offsets.
private struct ScalarText {
    /// Scalar values.
    var values: [UInt32] = []
    /// Regex class of each scalar.
    var classes: [ScalarClass] = []
    /// Byte offset of each scalar, plus the end offset.
    var offsets: [Int] = []

    var count: Int { values.count }

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        values.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        while i < range.upperBound {
            let lead = UInt32(bytes[i])
            let length: Int, value: UInt32
            if lead < 0x80 {
                (length, value) = (1, lead)
            } else if lead < 0xE0 {
                (length, value) = (2, (lead & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F))
            } else if lead < 0xF0 {
                (length, value) = (3, (lead & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F))
            } else {
                (length, value) = (4, (lead & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
                    | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F))
            }
            values.append(value)
            // The bytes come from a Swift String, so every value is a valid scalar.
            classes.append(value < 128 ? ScalarClass.ascii[Int(value)] : ScalarClass.classify(Unicode.Scalar(value)!))
            offsets.append(i)
            i += length
        }
        offsets.append(range.upperBound)
    }

    /// The byte range of scalars `range`.
    func bytes(_ range: Range<Int>) -> Range<Int> { offsets[range.lowerBound]..<offsets[range.upperBound] }

    /// End of the run of scalars of class `kind` starting at `i`, within `end`.
    func runEnd(_ i: Int, _ kind: ScalarClass, _ end: Int) -> Int {
        var j = i
        while j < end && classes[j] == kind { j += 1 }
        return j
    }

    /// Length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, lowercase only)
    /// starting at `i`, or 0.
    func contractionLength(_ i: Int, _ end: Int) -> Int {
        guard values[i] == 0x27, i + 1 < end else { return 0 }  // '
        switch values[i + 1] {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        case 0x72, 0x76:  // r v
            return i + 2 < end && values[i + 2] == 0x65 ? 3 : 0  // e
        case 0x6C:  // l
            return i + 2 < end && values[i + 2] == 0x6C ? 3 : 0
        default: return 0
        }
    }

    /// Appends the GPT-2 regex matches within scalars `range` (which the regex sees as the whole
    /// input: its lookahead stops at the range's end).
    ///
    /// At each position the alternatives are tried in the regex's order; the first that matches
    /// wins. The pattern covers every scalar, so the matches tile the range.
    func splitGPT2(_ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            var next: Int
            let contraction = contractionLength(i, end)
            if contraction > 0 {
                next = i + contraction
            } else if classes[i] != .space {
                // \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+ without the optional space.
                next = runEnd(i, classes[i], end)
            } else if values[i] == 0x20, i + 1 < end, classes[i + 1] != .space {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the space.
                next = runEnd(i + 1, classes[i + 1], end)
            } else {
                // `\s+(?!\S)`: the whitespace run, less its last scalar when a non-space follows;
                // a single whitespace scalar before a non-space falls through to `\s+`.
                let runEnd = runEnd(i, .space, end)
                next = runEnd == end || runEnd - i == 1 ? runEnd : runEnd - 1
            }
            pieces.append(bytes(i..<next))
            i = next
        }
    }
}

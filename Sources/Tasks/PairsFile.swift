import Foundation
import Transformer

/// The pairs-file formats CircuitKit reads (design §9).
public enum PairsFormat: String, CaseIterable, Sendable {
    /// Ours: one JSON object a line, `{"clean", "corrupt", "correct": [...], "incorrect": [...]}`.
    case jsonl
    /// auto-circuit's datasets JSON: an object whose `prompts` list holds
    /// `{"clean", "corrupt", "answers": [...], "wrong_answers": [...]}`.
    case autoCircuit = "auto-circuit"
    /// EAP-IG's CSV: columns `clean`, `corrupted`, `correct_idx`, `incorrect_idx` (token ids of
    /// the model's vocabulary). Without `incorrect_idx`, `correct_idx` is the start year YY of
    /// EAP-IG's greater-than data and the answers follow the greater-than rule.
    case eapIG = "eap-ig"

    /// The format its extension implies: `.jsonl` ours, `.json` auto-circuit, `.csv` EAP-IG.
    public init(inferringFrom url: URL) throws {
        switch url.pathExtension.lowercased() {
        case "jsonl": self = .jsonl
        case "json": self = .autoCircuit
        case "csv": self = .eapIG
        default:
            throw PairsFileError(file: url.relativePath, line: nil,
                                 reason: "cannot tell the format from the extension; name it: "
                                     + Self.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }
}

/// A problem with a pairs file: `file:line: reason`, or `file: reason` for the whole file.
public struct PairsFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file as the user named it.
    public let file: String
    /// 1-based line of the bad entry, or nil when the problem concerns the whole file.
    public let line: Int?
    /// What is wrong.
    public let reason: String

    /// Creates an error.
    public init(file: String, line: Int?, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    /// `file:line: reason`, or `file: reason`.
    public var description: String { line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)" }
}

/// The pairs read from a file.
public struct PairsFileContents: Sendable {
    /// The valid pairs as text, in file order.
    public let pairs: [PromptPair]
    /// The same pairs tokenized and checked.
    public let tokenized: [TokenizedPair]
    /// Entries skipped as invalid (only when reading with `skipInvalid`), each with its reason.
    public let skipped: [PairsFileError]
    /// Fields of the valid JSON pair objects that the format does not define (such as `template`),
    /// in the order first met; they were ignored.
    public let ignoredFields: [String]
}

/// Reading and writing pairs files.
public enum PairsFile {
    /// Reads the pairs in `url` and checks each against `tokenizer` (one-token answers, equal
    /// clean/corrupt token counts, non-empty answer lists).
    ///
    /// Fields of a pair object that the format does not define are ignored and listed in
    /// `ignoredFields`, except that a missing field's error suggests an unknown field whose name is
    /// within two edits of it. The first invalid entry throws a `PairsFileError` naming its line,
    /// and nothing after it is read — unless `skipInvalid` is set, in which case invalid entries are skipped and
    /// listed in `skipped`. Problems with the file as a whole (unreadable, not the named format,
    /// no valid pair) always throw.
    ///
    /// With `contextLength`, a pair whose prompts are longer than the model's context is invalid too.
    public static func read(_ url: URL, format: PairsFormat? = nil, tokenizer: Tokenizer,
                            skipInvalid: Bool = false, contextLength: Int? = nil) throws -> PairsFileContents {
        let name = url.relativePath
        let format = try format ?? PairsFormat(inferringFrom: url)
        let data = try readInputFile(url, as: "pairs file")
        var reader = EntryCollector(file: name, skipInvalid: skipInvalid, contextLength: contextLength)
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // a UTF-8 byte-order mark
        switch format {
        case .jsonl: try readJSONLines(bytes, tokenizer: tokenizer, into: &reader)
        case .autoCircuit: try readAutoCircuit(bytes, tokenizer: tokenizer, into: &reader)
        case .eapIG: try readEAPIG(bytes, tokenizer: tokenizer, into: &reader)
        }
        guard !reader.pairs.isEmpty else {
            let reason = reader.skipped.isEmpty ? "no pairs in the file"
                : "all \(reader.skipped.count) entries are invalid; the first: \(reader.skipped[0])"
            throw PairsFileError(file: name, line: nil, reason: reason)
        }
        return PairsFileContents(pairs: reader.pairs, tokenized: reader.tokenized, skipped: reader.skipped,
                                 ignoredFields: reader.ignoredFields)
    }

    /// `pairs` in our JSONL format, one line each, fields in the order clean, corrupt, correct,
    /// incorrect.
    public static func jsonLines(_ pairs: [PromptPair]) -> String {
        pairs.map { pair in
            func list(_ answers: [String]) -> String { "[" + answers.map(\.jsonQuoted).joined(separator: ", ") + "]" }
            return "{\"clean\": \(pair.clean.jsonQuoted), \"corrupt\": \(pair.corrupt.jsonQuoted), "
                + "\"correct\": \(list(pair.correct)), \"incorrect\": \(list(pair.incorrect))}\n"
        }.joined()
    }

    /// Writes `pairs` to `url` in our JSONL format.
    public static func write(_ pairs: [PromptPair], to url: URL) throws {
        do {
            try Data(jsonLines(pairs).utf8).write(to: url, options: .atomic)
        } catch {
            throw PairsFileError(file: url.relativePath, line: nil, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}

/// Collects valid entries and applies the skip-or-stop rule to invalid ones.
struct EntryCollector {
    let file: String
    let skipInvalid: Bool
    var pairs: [PromptPair] = []
    var tokenized: [TokenizedPair] = []
    var skipped: [PairsFileError] = []
    var ignoredFields: [String] = []
    /// The model's context: longer prompts are invalid.
    let contextLength: Int?

    init(file: String, skipInvalid: Bool, contextLength: Int? = nil) {
        self.file = file
        self.skipInvalid = skipInvalid
        self.contextLength = contextLength
    }

    /// Records a valid entry (from `line`) and the fields it had that the format does not define.
    mutating func accept(_ pair: PromptPair, _ tokens: TokenizedPair, line: Int, ignoring unknownFields: [String] = []) throws(EntryFailure) {
        if let contextLength, tokens.clean.count > contextLength {
            throw EntryFailure(line: line, reason: "the prompts are \(tokens.clean.count) tokens, longer than the model's context of \(contextLength)")
        }
        pairs.append(pair)
        tokenized.append(tokens)
        for name in unknownFields where !ignoredFields.contains(name) { ignoredFields.append(name) }
    }

    /// Records an invalid entry at `line`: throws it, or keeps it as skipped under `skipInvalid`.
    mutating func reject(line: Int, _ reason: String) throws {
        let error = PairsFileError(file: file, line: line, reason: reason)
        guard skipInvalid else { throw error }
        skipped.append(error)
    }

    /// An error about the whole file (always fatal).
    func fatal(line: Int? = nil, _ reason: String) -> PairsFileError {
        PairsFileError(file: file, line: line, reason: reason)
    }
}

extension PairProblem {
    /// The problem with field names translated to those of another format (e.g. "correct" →
    /// "answers" for auto-circuit).
    func renamingFields(_ names: [String: String]) -> PairProblem {
        switch self {
        case .emptyPrompt(let field): return .emptyPrompt(field: names[field] ?? field)
        case .emptyAnswers(let field): return .emptyAnswers(field: names[field] ?? field)
        default: return self
        }
    }
}

import Foundation
import Transformer

/// The fields every task spec (`Tasks/<name>/task.json`) starts with.
///
/// The rest of the file (templates, word lists, corruption rule, answers) is read by the
/// generator named in `generator`.
public struct TaskSpec: Sendable, Equatable {
    /// Task name, the folder name (`ioi`, `greater-than`, `induction`).
    public let name: String
    /// One line saying what the task measures.
    public let summary: String
    /// Where the task comes from (paper and year).
    public let source: String
    /// Which generator in `Sources/Tasks` builds the pairs.
    public let generator: String
    /// Metric used when the user names none.
    public let metric: Metric
    /// The spec file.
    public let url: URL

    /// The task's README, beside the spec.
    public var readme: URL { url.deletingLastPathComponent().appendingPathComponent("README.md") }

    /// The header fields as they appear in the JSON file.
    struct Header: Decodable {
        let name: String
        let summary: String
        let source: String
        let generator: String
        let metric: Metric
    }

    /// Reads the header of the spec at `url`.
    static func load(_ url: URL) throws -> (spec: TaskSpec, data: Data) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TaskError(url.path, "cannot read the task spec: \(error.localizedDescription)")
        }
        let header: Header = try decode(Header.self, from: data, file: url)
        let folder = url.deletingLastPathComponent().lastPathComponent
        guard header.name == folder else {
            throw TaskError(url.path, "name \"\(header.name)\" differs from its folder name \"\(folder)\"")
        }
        let spec = TaskSpec(name: header.name, summary: header.summary, source: header.source,
                            generator: header.generator, metric: header.metric, url: url)
        return (spec, data)
    }

    /// Decodes a spec (or its generator-specific part), turning decoding errors into one line
    /// that names the file and the field.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: URL) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(type, from: data)
        } catch let error as DecodingError {
            throw TaskError(file.path, describe(error))
        } catch {
            throw TaskError(file.path, "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field \"\(key.stringValue)\"" + (parent.isEmpty ? "" : " in \(parent)")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "field \(path(context.codingPath)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            let at = path(context.codingPath)
            return (at.isEmpty ? "" : "field \(at): ") + context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }
}

/// A problem with a task spec or with generating a task's pairs, named by what it concerns.
///
/// The description is one line, `subject: problem`, so the CLI can print it as is.
public struct TaskError: Error, CustomStringConvertible, Equatable {
    /// The spec file, folder or task name at fault.
    public let subject: String
    /// What is wrong.
    public let problem: String

    /// Creates an error about `subject`.
    public init(_ subject: String, _ problem: String) {
        self.subject = subject
        self.problem = problem
    }

    /// `subject: problem`.
    public var description: String { "\(subject): \(problem)" }
}

/// Pairs generated for a task, as text and as token ids.
public struct TaskDataset: Sendable {
    /// The task's name.
    public let task: String
    /// The task's default metric.
    public let metric: Metric
    /// The pairs as text (what `task export` writes).
    public let pairs: [PromptPair]
    /// The same pairs tokenized and checked (one-token answers, equal lengths).
    public let tokenized: [TokenizedPair]
    /// Facts about this generation worth reporting, e.g. which greater-than variant ran.
    public let notes: [String]

    /// Creates a dataset; `pairs` and `tokenized` must correspond one to one.
    public init(task: String, metric: Metric, pairs: [PromptPair], tokenized: [TokenizedPair], notes: [String] = []) {
        precondition(pairs.count == tokenized.count, "pairs and tokenized pairs must correspond")
        self.task = task
        self.metric = metric
        self.pairs = pairs
        self.tokenized = tokenized
        self.notes = notes
    }
}

/// A built-in task: reads its spec and turns a seed and a tokenizer into prompt pairs.
public protocol PromptTask: Sendable {
    /// The spec header (name, summary, source, default metric).
    var spec: TaskSpec { get }

    /// Lines describing the spec for `task show`; with a tokenizer, also what survives its
    /// one-token filters (and, for greater-than, which variant applies).
    func details(tokenizer: Tokenizer?) -> [String]

    /// Generates `count` pairs; the output depends only on the spec, `seed` and the tokenizer.
    func generate(count: Int, seed: UInt64, tokenizer: Tokenizer) throws -> TaskDataset
}

extension PromptTask {
    /// The text `task show` prints: name and summary, source, default metric, where the spec
    /// and README are, then `details(tokenizer:)`.
    public func overview(tokenizer: Tokenizer?) -> String {
        ([
            "\(spec.name): \(spec.summary)",
            "source: \(spec.source)",
            "default metric: \(spec.metric.rawValue)",
            "spec: \(spec.url.path)",
            "readme: \(spec.readme.path)",
        ] + details(tokenizer: tokenizer)).joined(separator: "\n")
    }

    /// Tokenizes a generated pair, reporting a failure as a task error (it means the spec's
    /// filters let through something this tokenizer splits differently).
    func checked(_ pair: PromptPair, tokenizer: Tokenizer) throws -> TokenizedPair {
        do {
            return try pair.tokenized(with: tokenizer)
        } catch {
            throw TaskError(spec.name, "generated an invalid pair (\(error)): \(pair.clean.debugDescription)")
        }
    }
}

extension TaskSpec {
    /// Checks a word list of the spec: non-empty, no blank or space-containing entries, no
    /// duplicates (they would skew sampling).
    func checkWordList(_ words: [String], field: String) throws {
        if words.isEmpty { throw TaskError(url.path, "\(field) is empty") }
        var seen: Set<String> = []
        for (i, word) in words.enumerated() {
            if word.isEmpty || word.contains(where: \.isWhitespace) {
                throw TaskError(url.path, "\(field)[\(i)] \(word.debugDescription) must be one word without spaces")
            }
            if !seen.insert(word).inserted {
                throw TaskError(url.path, "\(field)[\(i)] \(word.debugDescription) is listed twice")
            }
        }
    }
}

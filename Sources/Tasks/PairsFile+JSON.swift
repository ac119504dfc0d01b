import Foundation
import Transformer

/// An invalid entry of a pairs file: the line to blame and why.
struct EntryFailure: Error {
    /// 1-based line.
    let line: Int
    /// What is wrong.
    let reason: String
}

/// The names a JSON pairs format gives the four fields of a pair.
struct JSONPairFields {
    let clean: String
    let corrupt: String
    let correct: String
    let incorrect: String

    /// Ours (design §9).
    static let ours = JSONPairFields(clean: "clean", corrupt: "corrupt", correct: "correct", incorrect: "incorrect")
    /// auto-circuit's prompt objects.
    static let autoCircuit = JSONPairFields(clean: "clean", corrupt: "corrupt", correct: "answers", incorrect: "wrong_answers")

    var all: [String] { [clean, corrupt, correct, incorrect] }

    /// This format's name for each of our field names.
    var byCanonicalName: [String: String] {
        ["clean": clean, "corrupt": corrupt, "correct": correct, "incorrect": incorrect]
    }
}

extension PairsFile {
    /// Reads our JSONL format: one pair object a line; blank lines are ignored.
    static func readJSONLines(_ bytes: [UInt8], tokenizer: Tokenizer, into collector: inout EntryCollector) throws {
        var lineNumber = 0
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Array(rawLine)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            do throws(EntryFailure) {
                let node: JSONNode
                do {
                    node = try JSONNode.parse(line, firstLine: lineNumber)
                } catch {
                    throw EntryFailure(line: lineNumber, reason: "bad JSON: \(error.message) (column \(error.column))")
                }
                let (pair, tokens, unknown) = try decodePair(node, fields: .ours, tokenizer: tokenizer)
                try collector.accept(pair, tokens, line: lineNumber, ignoring: unknown)
            } catch {
                try collector.reject(line: error.line, error.reason)
            }
        }
    }

    /// Reads auto-circuit's JSON: an object with a `prompts` list of pair objects (other
    /// top-level fields, such as `word_idxs` or `seq_labels`, are ignored).
    static func readAutoCircuit(_ bytes: [UInt8], tokenizer: Tokenizer, into collector: inout EntryCollector) throws {
        let root: JSONNode
        do {
            root = try JSONNode.parse(bytes)
        } catch {
            throw collector.fatal(line: error.line, "bad JSON: \(error.message) (column \(error.column))")
        }
        guard case .object(let members) = root.value else {
            throw collector.fatal(line: root.line, "expected an object with a \"prompts\" list (auto-circuit format), found \(root.typeDescription)")
        }
        guard let prompts = members.last(where: { $0.key == "prompts" })?.value else {
            throw collector.fatal("no \"prompts\" field (auto-circuit format)")
        }
        guard case .array(let entries) = prompts.value else {
            throw collector.fatal(line: prompts.line, "\"prompts\" must be a list, found \(prompts.typeDescription)")
        }
        for entry in entries {
            do throws(EntryFailure) {
                let (pair, tokens, unknown) = try decodePair(entry, fields: .autoCircuit, tokenizer: tokenizer)
                try collector.accept(pair, tokens, line: entry.line, ignoring: unknown)
            } catch {
                try collector.reject(line: error.line, error.reason)
            }
        }
    }

    /// Decodes one pair object and checks it against the tokenizer, blaming the line of the
    /// field at fault.
    ///
    /// - Returns: the pair, its tokens, and the object's fields that the format does not define
    ///   (ignored), in file order
    static func decodePair(_ node: JSONNode, fields: JSONPairFields,
                           tokenizer: Tokenizer) throws(EntryFailure) -> (PromptPair, TokenizedPair, unknown: [String]) {
        guard case .object(let members) = node.value else {
            throw EntryFailure(line: node.line, reason: "expected a pair object, found \(node.typeDescription)")
        }
        var found: [String: JSONNode] = [:]
        var unknown: [(name: String, line: Int)] = []
        for (key, value) in members {
            guard fields.all.contains(key) else {
                if !unknown.contains(where: { $0.name == key }) { unknown.append((key, value.line)) }
                continue
            }
            guard found[key] == nil else {
                throw EntryFailure(line: value.line, reason: "field \(key.debugDescription) appears twice")
            }
            found[key] = value
        }
        func field(_ name: String) throws(EntryFailure) -> JSONNode {
            guard let value = found[name] else {
                // An unknown field within two edits of the missing one is most likely it, misspelled.
                let guess = unknown.map { (field: $0, distance: $0.name.editDistance(to: name)) }
                    .filter { $0.distance <= 2 }.min { $0.distance < $1.distance }?.field
                guard let guess else { throw EntryFailure(line: node.line, reason: "missing field \(name.debugDescription)") }
                throw EntryFailure(line: guess.line,
                                   reason: "missing field \(name.debugDescription) (did you mean \(guess.name.debugDescription)?)")
            }
            return value
        }
        func string(_ name: String) throws(EntryFailure) -> String {
            let value = try field(name)
            guard case .string(let text) = value.value else {
                throw EntryFailure(line: value.line, reason: "field \(name.debugDescription) must be a string, found \(value.typeDescription)")
            }
            return text
        }
        func strings(_ name: String) throws(EntryFailure) -> [(text: String, line: Int)] {
            let value = try field(name)
            guard case .array(let elements) = value.value else {
                throw EntryFailure(line: value.line, reason: "field \(name.debugDescription) must be a list of strings, found \(value.typeDescription)")
            }
            var texts: [(text: String, line: Int)] = []
            for element in elements {
                guard case .string(let text) = element.value else {
                    throw EntryFailure(line: element.line, reason: "field \(name.debugDescription) must be a list of strings, but holds \(element.typeDescription)")
                }
                texts.append((text, element.line))
            }
            return texts
        }
        let correct = try strings(fields.correct)
        let incorrect = try strings(fields.incorrect)
        let pair = PromptPair(clean: try string(fields.clean), corrupt: try string(fields.corrupt),
                              correct: correct.map(\.text), incorrect: incorrect.map(\.text))
        do {
            return (pair, try pair.tokenized(with: tokenizer), unknown.map(\.name))
        } catch {
            let line: Int
            switch error {
            case .emptyPrompt(let name), .emptyAnswers(let name):
                line = found[fields.byCanonicalName[name] ?? name]?.line ?? node.line
            case .multiTokenAnswer(let answer, _):
                line = (correct + incorrect).first { $0.text == answer }?.line ?? node.line
            case .lengthMismatch:
                line = found[fields.corrupt]?.line ?? node.line
            case .answerInBoth, .tokenOutOfRange:
                line = found[fields.incorrect]?.line ?? node.line
            }
            throw EntryFailure(line: line, reason: error.renamingFields(fields.byCanonicalName).description)
        }
    }
}

extension String {
    /// The Levenshtein distance to `other`: the fewest single-character insertions, deletions and
    /// substitutions that turn one into the other.
    func editDistance(to other: String) -> Int {
        let b = Array(other)
        var previous = Array(0...b.count)
        for (i, x) in enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}

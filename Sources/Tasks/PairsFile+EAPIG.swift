import Foundation
import Transformer

extension PairsFile {
    /// Reads EAP-IG's CSV.
    ///
    /// Columns are found by name in the header; others (pandas' unnamed index, `corrupted_hard`,
    /// …) are ignored. `correct_idx` and `incorrect_idx` are token ids of the model's vocabulary,
    /// as EAP-IG writes them. A file without `incorrect_idx` is EAP-IG's greater-than data, whose
    /// `correct_idx` is the start year YY; its answers follow `GreaterThanVariant` for the
    /// tokenizer.
    static func readEAPIG(_ bytes: [UInt8], tokenizer: Tokenizer, into collector: inout EntryCollector) throws {
        let records: [CSVRecord]
        do {
            records = try csvRecords(bytes)
        } catch {
            throw collector.fatal(line: error.line, "bad CSV: \(error.message)")
        }
        guard let header = records.first else { throw collector.fatal("no pairs in the file") }
        var column: [String: Int] = [:]
        for (i, name) in header.fields.enumerated() where !name.isEmpty && column[name] == nil {
            column[name] = i
        }
        let required = ["clean", "corrupted", "correct_idx"]
        let missing = required.filter { column[$0] == nil }
        guard missing.isEmpty else {
            throw collector.fatal(line: header.line, "header lacks " + missing.joined(separator: ", ")
                + " (EAP-IG columns: clean, corrupted, correct_idx, incorrect_idx)")
        }
        var greaterThan: GreaterThanVariant?
        if column["incorrect_idx"] == nil {
            guard let variant = GreaterThanVariant.detect(tokenizer) else {
                throw collector.fatal(line: header.line, "no incorrect_idx column, so correct_idx is read as a greater-than "
                    + "start year, but this tokenizer makes neither two-digit numbers nor digits one token")
            }
            greaterThan = variant
        }
        for record in records.dropFirst() {
            do throws(EntryFailure) {
                let (pair, tokens) = try eapIGPair(record, column: column, greaterThan: greaterThan,
                                                   headerCount: header.fields.count, tokenizer: tokenizer)
                try collector.accept(pair, tokens, line: record.line)
            } catch {
                try collector.reject(line: error.line, error.reason)
            }
        }
    }

    /// One EAP-IG row as a checked pair.
    private static func eapIGPair(_ record: CSVRecord, column: [String: Int], greaterThan: GreaterThanVariant?,
                                  headerCount: Int, tokenizer: Tokenizer) throws(EntryFailure) -> (PromptPair, TokenizedPair) {
        let fail = { (reason: String) in EntryFailure(line: record.line, reason: reason) }
        guard record.fields.count == headerCount else {
            throw fail("row has \(record.fields.count) fields but the header has \(headerCount)")
        }
        func integer(_ name: String) throws(EntryFailure) -> Int {
            let text = record.fields[column[name]!]
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw fail("\(name) \(text.debugDescription) is not an integer")
            }
            return value
        }
        let clean = record.fields[column["clean"]!]
        let corrupt = record.fields[column["corrupted"]!]
        func checked<T>(_ body: () throws(PairProblem) -> T) throws(EntryFailure) -> T {
            do {
                return try body()
            } catch {
                let renames = ["corrupt": "corrupted", "correct": "correct_idx", "incorrect": "incorrect_idx"]
                throw fail(error.renamingFields(renames).description)
            }
        }
        if let variant = greaterThan {
            let year = try integer("correct_idx")
            guard (0...99).contains(year) else {
                throw fail("correct_idx \(year) is not a start year in 0…99 (greater-than data has no incorrect_idx)")
            }
            guard variant.isUsable(year: year) else {
                throw fail("start year \(GreaterThanVariant.twoDigits(year)) leaves no correct or no incorrect "
                    + "answer with \(variant.rawValue) answers")
            }
            let answers = variant.answers(year: year)
            let pair = PromptPair(clean: clean, corrupt: corrupt, correct: answers.correct, incorrect: answers.incorrect)
            return (pair, try checked { () throws(PairProblem) in try pair.tokenized(with: tokenizer) })
        }
        let correctID = try integer("correct_idx"), incorrectID = try integer("incorrect_idx")
        let tokens = TokenizedPair(clean: tokenizer.encode(clean), corrupt: tokenizer.encode(corrupt),
                                   correct: [correctID], incorrect: [incorrectID])
        try checked { () throws(PairProblem) in try tokens.validate(tokenizer: tokenizer) }
        let pair = PromptPair(clean: clean, corrupt: corrupt, correct: [tokenizer.decode([correctID])],
                              incorrect: [tokenizer.decode([incorrectID])])
        return (pair, tokens)
    }
}

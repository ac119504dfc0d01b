import Foundation
import Kernels
import Transformer

/// How greater-than answers are tokens in a given vocabulary.
public enum GreaterThanVariant: String, Sendable, CaseIterable {
    /// Every two-digit string "00"…"99" is one token (GPT-2): the answer is the year's last two
    /// digits; years after YY are correct, YY and earlier incorrect (Hanna et al. 2023).
    case twoDigitYears = "two-digit-years"
    /// Digits are single tokens (SmolLM2, Llama 3): the answer is the next digit, the tens digit of
    /// the end year; digits above YY's tens digit are correct, digits below it incorrect.
    case singleDigits = "single-digits"

    /// The variant that fits `tokenizer`, or nil when it splits numbers in neither way.
    public static func detect(_ tokenizer: Tokenizer) -> GreaterThanVariant? {
        if (0...99).allSatisfy({ tokenizer.singleToken(twoDigits($0)) != nil }) { return .twoDigitYears }
        let digitTokens = (0...9).map { tokenizer.singleToken(String($0)) }
        if digitTokens.allSatisfy({ $0 != nil }), tokenizer.encode("13") == [digitTokens[1]!, digitTokens[3]!] {
            return .singleDigits
        }
        return nil
    }

    /// Correct and incorrect answers for start year YY (0…99). One list is empty for YY = 99
    /// with two-digit years, and for a tens digit of 0 or 9 with single digits (see `isUsable`).
    public func answers(year: Int) -> (correct: [String], incorrect: [String]) {
        switch self {
        case .twoDigitYears:
            return ((0...99).filter { $0 > year }.map(Self.twoDigits), (0...99).filter { $0 <= year }.map(Self.twoDigits))
        case .singleDigits:
            let tens = year / 10
            return ((0...9).filter { $0 > tens }.map(String.init), (0...9).filter { $0 < tens }.map(String.init))
        }
    }

    /// Whether start year YY leaves both answer lists non-empty.
    public func isUsable(year: Int) -> Bool {
        let lists = answers(year: year)
        return !lists.correct.isEmpty && !lists.incorrect.isEmpty
    }

    /// One line saying what the answers are, for notes and `task show`.
    public var summary: String {
        switch self {
        case .twoDigitYears:
            return "two-digit year tokens (00–99) are the answers: years after YY correct, YY and earlier incorrect"
        case .singleDigits:
            return "digits are single tokens, so the answer is the next digit: digits above YY's tens digit correct, below it incorrect"
        }
    }

    /// `n` as two digits, "07".
    static func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}

/// Greater-than (Hanna et al. 2023), generated from `Tasks/greater-than/task.json`.
///
/// "The war lasted from the year 1352 to the year 13" should continue with a year after 52; the
/// corrupt prompt says 1301, which leaves no year to prefer. Start years are kept only where the
/// year tokenizes as the century's tokens followed by YY's, in both the clean and corrupt prompts.
public struct GreaterThanTask: PromptTask {
    private struct Body: Decodable {
        let template: String
        let centuries: [Int]
        let years: [Int]
        let corruptYear: Int
        let nouns: [String]
    }

    /// The spec header.
    public let spec: TaskSpec
    /// The template, with `{NOUN}`, `{CC}` (century digits) and `{YY}`.
    public var template: String { parsedTemplate.source }
    /// Centuries CC to draw from (inclusive range).
    public let centuries: ClosedRange<Int>
    /// Start years YY to draw from (inclusive range), before tokenizer filtering.
    public let years: ClosedRange<Int>
    /// YY of the corrupt prompt (1, i.e. "01").
    public let corruptYear: Int
    /// Candidate nouns, before one-token filtering.
    public let nouns: [String]
    private let parsedTemplate: PromptTemplate

    /// Reads and checks the greater-than part of a spec.
    public init(spec: TaskSpec, data: Data) throws {
        let body = try TaskSpec.decode(GreaterThanTask.Body.self, from: data, file: spec.url)
        let file = spec.url.path
        self.spec = spec
        do {
            parsedTemplate = try PromptTemplate(body.template, slots: ["NOUN", "CC", "YY"])
        } catch {
            throw TaskError(file, "template: \(error)")
        }
        guard parsedTemplate.count(of: "YY") == 1, parsedTemplate.count(of: "NOUN") == 1,
              parsedTemplate.segments.last == .slot("CC"),
              let yy = parsedTemplate.position(of: "YY"), yy > 0, parsedTemplate.segments[yy - 1] == .slot("CC")
        else {
            throw TaskError(file, "template must contain {NOUN} once and {CC}{YY} once, and end with {CC}")
        }
        guard parsedTemplate.slotFollowsSpace("NOUN") else { throw TaskError(file, "{NOUN} must follow a space") }
        func range(_ values: [Int], _ field: String, _ limits: ClosedRange<Int>) throws -> ClosedRange<Int> {
            guard values.count == 2, values[0] <= values[1], limits.contains(values[0]), limits.contains(values[1]) else {
                throw TaskError(file, "\(field) must be [first, last] within \(limits.lowerBound)…\(limits.upperBound)")
            }
            return values[0]...values[1]
        }
        centuries = try range(body.centuries, "centuries", 10...99)
        years = try range(body.years, "years", 0...99)
        guard (0...99).contains(body.corruptYear), !years.contains(body.corruptYear) else {
            throw TaskError(file, "corrupt_year must be in 0…99 and outside years")
        }
        corruptYear = body.corruptYear
        try spec.checkWordList(body.nouns, field: "nouns")
        nouns = body.nouns
    }

    /// The variant for `tokenizer`, or an error saying why neither applies.
    public func variant(for tokenizer: Tokenizer) throws -> GreaterThanVariant {
        guard let variant = GreaterThanVariant.detect(tokenizer) else {
            throw TaskError(spec.name, "this tokenizer makes neither every two-digit number nor every digit one token")
        }
        return variant
    }

    /// For each century, the start years whose prompts tokenize as the task needs and whose
    /// answer lists are both non-empty.
    func usableYears(variant: GreaterThanVariant, tokenizer: Tokenizer) -> [(century: Int, years: [Int])] {
        func splitsCleanly(_ century: Int, _ year: Int) -> Bool {
            let yy = GreaterThanVariant.twoDigits(year)
            let expected = tokenizer.encode(" \(century)") + tokenizer.encode(yy)
            let yyTokens = variant == .twoDigitYears ? 1 : 2
            return tokenizer.encode(yy).count == yyTokens && tokenizer.encode(" \(century)\(yy)") == expected
        }
        return centuries.compactMap { century in
            guard splitsCleanly(century, corruptYear) else { return nil }
            let usable = years.filter { variant.isUsable(year: $0) && splitsCleanly(century, $0) }
            return usable.isEmpty ? nil : (century, usable)
        }
    }

    /// Template, ranges and noun count; with a tokenizer, its variant and usable years.
    public func details(tokenizer: Tokenizer?) -> [String] {
        var lines = [
            "template: \(template)",
            "centuries \(centuries.lowerBound)–\(centuries.upperBound), start years "
                + "\(GreaterThanVariant.twoDigits(years.lowerBound))–\(GreaterThanVariant.twoDigits(years.upperBound)), "
                + "corrupt start year \(GreaterThanVariant.twoDigits(corruptYear))",
            "nouns: \(nouns.count)",
        ]
        if let tokenizer {
            if let variant = GreaterThanVariant.detect(tokenizer) {
                let usable = usableYears(variant: variant, tokenizer: tokenizer)
                lines.append("variant for this tokenizer: \(variant.rawValue) — \(variant.summary)")
                lines.append("usable (century, year) pairs: \(usable.map(\.years.count).reduce(0, +)); "
                    + "one-token nouns: \(tokenizer.oneTokenWords(nouns).count)")
            } else {
                lines.append("variant for this tokenizer: none (numbers split in neither supported way)")
            }
        }
        return lines
    }

    /// Generates `count` pairs: noun, century and start year drawn uniformly from `SeededRandom(seed)`.
    public func generate(count: Int, seed: UInt64, tokenizer: Tokenizer) throws -> TaskDataset {
        let variant = try variant(for: tokenizer)
        let nouns = tokenizer.oneTokenWords(self.nouns)
        guard !nouns.isEmpty else { throw TaskError(spec.name, "no noun is one token in this tokenizer") }
        let usable = usableYears(variant: variant, tokenizer: tokenizer)
        guard !usable.isEmpty else {
            throw TaskError(spec.name, "no start year tokenizes as century + year in this tokenizer")
        }
        var rng = SeededRandom(seed: seed)
        var pairs: [PromptPair] = []
        var tokenized: [TokenizedPair] = []
        for _ in 0..<max(count, 0) {
            let noun = rng.choice(nouns)
            let (century, years) = rng.choice(usable)
            let year = rng.choice(years)
            let cc = String(century)
            let clean = parsedTemplate.fill(["NOUN": noun, "CC": cc, "YY": GreaterThanVariant.twoDigits(year)])
            let corrupt = parsedTemplate.fill(["NOUN": noun, "CC": cc, "YY": GreaterThanVariant.twoDigits(corruptYear)])
            let answers = variant.answers(year: year)
            let pair = PromptPair(clean: clean, corrupt: corrupt, correct: answers.correct, incorrect: answers.incorrect)
            tokenized.append(try checked(pair, tokenizer: tokenizer))
            pairs.append(pair)
        }
        return TaskDataset(task: spec.name, metric: spec.metric, pairs: pairs, tokenized: tokenized,
                           notes: ["variant: \(variant.rawValue) — \(variant.summary)"])
    }
}

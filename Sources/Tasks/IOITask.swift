import Foundation
import Kernels
import Transformer

/// Indirect object identification (Wang et al. 2022), generated from `Tasks/ioi/task.json`.
///
/// A template such as "When {N1} and {N2} went to the {PLACE}, {S} gave a {OBJECT} to" names the
/// indirect object (IO) once and the subject (S) twice; the model should complete it with IO.
/// Each name order of the spec (ABBA: IO first; BABA: S first) takes turns, so any prefix of the
/// output is balanced. The ABC corruption replaces the three name occurrences with three fresh,
/// distinct names. Names, places and objects are first filtered to those that are one token
/// with their leading space, so clean and corrupt prompts have the same token count.
public struct IOITask: PromptTask {
    /// Who a name slot holds.
    public enum Role: String, Decodable, Sendable {
        /// The indirect object, named once.
        case indirectObject = "IO"
        /// The subject, named twice.
        case subject = "S"
    }

    /// An order of the first two names, e.g. ABBA = (IO, S).
    public struct NameOrder: Decodable, Sendable, Equatable {
        /// The order's name ("ABBA", "BABA").
        public let name: String
        /// Who fills `{N1}`.
        public let first: Role
        /// Who fills `{N2}`.
        public let second: Role
    }

    /// Which roles' names are the correct and incorrect answers.
    public struct AnswerRoles: Decodable, Sendable, Equatable {
        /// Role of the correct answer (IO).
        public let correct: Role
        /// Role of the incorrect answer (S).
        public let incorrect: Role
    }

    private struct Body: Decodable {
        let templates: [String]
        let orders: [NameOrder]
        let corruption: String
        let answers: AnswerRoles
        let names: [String]
        let places: [String]
        let objects: [String]
    }

    /// Placeholders a template may use.
    static let slots: Set<String> = ["N1", "N2", "S", "PLACE", "OBJECT"]
    /// Corruption rules this generator implements.
    static let corruptions = ["abc"]

    /// The spec header.
    public let spec: TaskSpec
    /// The templates as written in the spec (with `{N1}`, `{N2}`, `{S}`, `{PLACE}`, `{OBJECT}`).
    public var templates: [String] { parsedTemplates.map(\.source) }
    /// The name orders, used in turn.
    public let orders: [NameOrder]
    /// The corruption rule (`abc`).
    public let corruption: String
    /// Which names are the answers.
    public let answers: AnswerRoles
    /// Candidate names, before one-token filtering.
    public let names: [String]
    /// Candidate places, before one-token filtering.
    public let places: [String]
    /// Candidate objects, before one-token filtering.
    public let objects: [String]
    private let parsedTemplates: [PromptTemplate]

    /// Reads and checks the IOI part of a spec.
    public init(spec: TaskSpec, data: Data) throws {
        let body = try TaskSpec.decode(Body.self, from: data, file: spec.url)
        let file = spec.url.path
        self.spec = spec
        guard !body.templates.isEmpty else { throw TaskError(file, "templates is empty") }
        parsedTemplates = try body.templates.enumerated().map { i, text in
            let template: PromptTemplate
            do {
                template = try PromptTemplate(text, slots: Self.slots)
            } catch {
                throw TaskError(file, "templates[\(i)]: \(error)")
            }
            for slot in ["N1", "N2", "S"] where template.count(of: slot) != 1 {
                throw TaskError(file, "templates[\(i)] must contain {\(slot)} exactly once")
            }
            for slot in Self.slots where template.count(of: slot) > 0 && !template.slotFollowsSpace(slot) {
                throw TaskError(file, "templates[\(i)]: every {\(slot)} must follow a space")
            }
            guard let n1 = template.position(of: "N1"), let n2 = template.position(of: "N2"),
                  let s = template.position(of: "S"), n1 < n2, n2 < s
            else { throw TaskError(file, "templates[\(i)] must name {N1}, then {N2}, then {S}") }
            if text.last?.isWhitespace ?? true {
                throw TaskError(file, "templates[\(i)] must not end with a space (answers carry their own)")
            }
            return template
        }
        guard !body.orders.isEmpty else { throw TaskError(file, "orders is empty") }
        for order in body.orders where order.first == order.second {
            throw TaskError(file, "order \(order.name) must put IO and S in {N1} and {N2}, one each")
        }
        guard Self.corruptions.contains(body.corruption) else {
            throw TaskError(file, "unknown corruption \"\(body.corruption)\"; supported: "
                + Self.corruptions.joined(separator: ", "))
        }
        guard body.answers.correct != body.answers.incorrect else {
            throw TaskError(file, "answers.correct and answers.incorrect must be different roles")
        }
        try spec.checkWordList(body.names, field: "names")
        try spec.checkWordList(body.places, field: "places")
        try spec.checkWordList(body.objects, field: "objects")
        orders = body.orders
        corruption = body.corruption
        answers = body.answers
        names = body.names
        places = body.places
        objects = body.objects
    }

    /// Templates, orders, corruption, answers and candidate counts (and how many are one token).
    public func details(tokenizer: Tokenizer?) -> [String] {
        var lines = [
            "templates: \(parsedTemplates.count) in each of the orders "
                + orders.map { "\($0.name) (\($0.first.rawValue) \($0.second.rawValue) \(Role.subject.rawValue))" }
                .joined(separator: ", "),
            "example template: \(parsedTemplates[0].source)",
            "corruption: \(corruption) — the three name occurrences replaced by three fresh, distinct names",
            "answers: correct = \(answers.correct.rawValue), incorrect = \(answers.incorrect.rawValue)",
            "candidates: \(names.count) names, \(places.count) places, \(objects.count) objects",
        ]
        if let tokenizer {
            lines.append("one token in this tokenizer: \(tokenizer.oneTokenWords(names).count) names, "
                + "\(tokenizer.oneTokenWords(places).count) places, \(tokenizer.oneTokenWords(objects).count) objects")
        }
        return lines
    }

    /// Generates `count` pairs, orders in turn; template, names, place and object drawn from
    /// `SeededRandom(seed)`.
    public func generate(count: Int, seed: UInt64, tokenizer: Tokenizer) throws -> TaskDataset {
        let names = tokenizer.oneTokenWords(self.names)
        let places = tokenizer.oneTokenWords(self.places)
        let objects = tokenizer.oneTokenWords(self.objects)
        // IO, S and three fresh corrupt names.
        guard names.count >= 5 else {
            throw TaskError(spec.name, "only \(names.count) names are one token in this tokenizer; need at least 5")
        }
        guard !places.isEmpty, !objects.isEmpty else {
            throw TaskError(spec.name, "no place or no object is one token in this tokenizer")
        }
        var rng = SeededRandom(seed: seed)
        var pairs: [PromptPair] = []
        var tokenized: [TokenizedPair] = []
        for i in 0..<max(count, 0) {
            let order = orders[i % orders.count]
            let template = rng.choice(parsedTemplates)
            let drawn = rng.sample(names, count: 5)
            let place = rng.choice(places)
            let object = rng.choice(objects)
            func name(_ role: Role) -> String { role == .indirectObject ? drawn[0] : drawn[1] }
            let clean = template.fill([
                "N1": name(order.first), "N2": name(order.second), "S": name(.subject),
                "PLACE": place, "OBJECT": object,
            ])
            let corrupt = template.fill([
                "N1": drawn[2], "N2": drawn[3], "S": drawn[4], "PLACE": place, "OBJECT": object,
            ])
            let pair = PromptPair(clean: clean, corrupt: corrupt,
                                  correct: [" " + name(answers.correct)], incorrect: [" " + name(answers.incorrect)])
            tokenized.append(try checked(pair, tokenizer: tokenizer))
            pairs.append(pair)
        }
        return TaskDataset(task: spec.name, metric: spec.metric, pairs: pairs, tokenized: tokenized,
                           notes: ["\(names.count) names, \(places.count) places, \(objects.count) objects are one token"])
    }
}

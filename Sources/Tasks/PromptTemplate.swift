/// A prompt template with `{SLOT}` placeholders, as written in task specs.
struct PromptTemplate: Sendable {
    /// A piece of a template: literal text or a placeholder.
    enum Segment: Sendable, Equatable {
        case text(String)
        case slot(String)
    }

    /// The template as written.
    let source: String
    /// The template split into text and placeholders.
    let segments: [Segment]

    /// Parses `source`; every placeholder must be one of `slots`. Throws the reason as text.
    init(_ source: String, slots: Set<String>) throws(TemplateProblem) {
        self.source = source
        var segments: [Segment] = []
        var rest = Substring(source)
        while let open = rest.firstIndex(of: "{") {
            if open > rest.startIndex { segments.append(.text(String(rest[..<open]))) }
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw TemplateProblem("template \(source.debugDescription) has an unclosed '{'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard slots.contains(name) else {
                throw TemplateProblem("template \(source.debugDescription) has unknown placeholder {\(name)}; "
                    + "known: " + slots.sorted().map { "{\($0)}" }.joined(separator: ", "))
            }
            segments.append(.slot(name))
            rest = rest[rest.index(after: close)...]
        }
        if rest.contains("}") { throw TemplateProblem("template \(source.debugDescription) has a stray '}'") }
        if !rest.isEmpty { segments.append(.text(String(rest))) }
        self.segments = segments
    }

    /// How many times `slot` occurs.
    func count(of slot: String) -> Int {
        segments.filter { $0 == .slot(slot) }.count
    }

    /// Whether every occurrence of `slot` directly follows a space (so a word filled in keeps the
    /// leading-space token it was filtered as).
    func slotFollowsSpace(_ slot: String) -> Bool {
        for (i, segment) in segments.enumerated() where segment == .slot(slot) {
            guard i > 0, case .text(let before) = segments[i - 1], before.hasSuffix(" ") else { return false }
        }
        return true
    }

    /// Index in `segments` of the first occurrence of `slot`.
    func position(of slot: String) -> Int? {
        segments.firstIndex(of: .slot(slot))
    }

    /// The template with every placeholder replaced by `values[name]`.
    func fill(_ values: [String: String]) -> String {
        segments.map { segment in
            switch segment {
            case .text(let text): return text
            case .slot(let name): return values[name] ?? ""
            }
        }.joined()
    }
}

/// Why a template in a spec is malformed.
struct TemplateProblem: Error, CustomStringConvertible {
    /// The reason, as text.
    let description: String

    init(_ description: String) { self.description = description }
}

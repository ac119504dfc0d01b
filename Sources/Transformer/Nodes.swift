/// The computational graph's nodes (design §3) and their names, formatted and parsed here only.
///
/// Names follow EAP-IG / TransformerLens: senders `input`, `a3.h2`, `m3`; receivers `a3.h2<q>`,
/// `a3.h2<k>`, `a3.h2<v>`, `m3`, `logits`. Numbering and edges belong to `CircuitGraph`.

/// Which input of an attention head a receiver is.
public enum QKV: String, Sendable, CaseIterable, Codable {
    case q, k, v
}

/// A node that writes into the residual stream.
public enum Sender: Hashable, Sendable, Comparable {
    /// Token embedding (+ position embedding for GPT-2).
    case input
    /// One head's attention output times its slice of the output projection (bias excluded).
    case head(layer: Int, head: Int)
    /// An MLP's output.
    case mlp(layer: Int)

    /// EAP-IG name: `input`, `a3.h2`, `m3`.
    public var name: String {
        switch self {
        case .input: return "input"
        case .head(let l, let h): return "a\(l).h\(h)"
        case .mlp(let l): return "m\(l)"
        }
    }

    /// Layer the sender belongs to (−1 for `input`).
    public var layer: Int {
        switch self {
        case .input: return -1
        case .head(let l, _), .mlp(let l): return l
        }
    }

    /// Parses `input`, `a3.h2`, `m3` (any layer and head; `CircuitGraph.sender(named:)` checks the model has it).
    public init?(name: String) {
        if name == "input" {
            self = .input
        } else if name.hasPrefix("m"), let l = Int(name.dropFirst()), l >= 0 {
            self = .mlp(layer: l)
        } else if name.hasPrefix("a") {
            let parts = name.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let l = Int(parts[0]), parts[1].hasPrefix("h"), let h = Int(parts[1].dropFirst()), l >= 0, h >= 0
            else { return nil }
            self = .head(layer: l, head: h)
        } else {
            return nil
        }
    }

    public static func < (a: Sender, b: Sender) -> Bool {
        a.sortKey < b.sortKey
    }

    private var sortKey: (Int, Int) {
        switch self {
        case .input: return (-1, 0)
        case .head(let l, let h): return (l, h)
        case .mlp(let l): return (l, Int.max)
        }
    }
}

/// A node that reads the residual stream.
public enum Receiver: Hashable, Sendable {
    /// The query, key or value input of one head.
    case head(layer: Int, head: Int, port: QKV)
    /// An MLP's input.
    case mlp(layer: Int)
    /// The input of the final norm and unembedding.
    case logits

    /// EAP-IG name: `a3.h2<q>`, `m3`, `logits`.
    public var name: String {
        switch self {
        case .head(let l, let h, let port): return "a\(l).h\(h)<\(port.rawValue)>"
        case .mlp(let l): return "m\(l)"
        case .logits: return "logits"
        }
    }

    /// Parses `a3.h2<q>`, `m3`, `logits`.
    public init?(name: String) {
        if name == "logits" {
            self = .logits
        } else if name.hasSuffix(">"), let open = name.lastIndex(of: "<") {
            let port = name[name.index(after: open)..<name.index(before: name.endIndex)]
            guard let qkv = QKV(rawValue: String(port)), case .head(let l, let h)? = Sender(name: String(name[..<open])) else { return nil }
            self = .head(layer: l, head: h, port: qkv)
        } else if case .mlp(let l)? = Sender(name: name) {
            self = .mlp(layer: l)
        } else {
            return nil
        }
    }

    /// Layer of the receiver (Int.max for `logits`).
    public var layer: Int {
        switch self {
        case .head(let l, _, _), .mlp(let l): return l
        case .logits: return Int.max
        }
    }

    /// The node this receiver is an input of (its head or MLP), or nil for `logits`.
    public var node: Sender? {
        switch self {
        case .head(let l, let h, _): return .head(layer: l, head: h)
        case .mlp(let l): return .mlp(layer: l)
        case .logits: return nil
        }
    }
}

/// Names of the computational graph's nodes (design §3), shared by the backward pass and circuits.
///
/// Names follow EAP-IG / TransformerLens: senders `input`, `a3.h2`, `m3`; receivers `a3.h2<q>`,
/// `a3.h2<k>`, `a3.h2<v>`, `m3`, `logits`.

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

    /// Position in topological order for a model with `heads` heads per layer.
    public func index(heads: Int) -> Int {
        switch self {
        case .input: return 0
        case .head(let l, let h): return 1 + l * (heads + 1) + h
        case .mlp(let l): return 1 + l * (heads + 1) + heads
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

    /// Layer of the receiver (`layers` for `logits` when given, else Int.max).
    public var layer: Int {
        switch self {
        case .head(let l, _, _), .mlp(let l): return l
        case .logits: return Int.max
        }
    }
}

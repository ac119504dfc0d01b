import Transformer

/// An edge of the computational graph: a sender's output feeding a receiver's input.
public struct Edge: Hashable, Sendable {
    public let sender: Sender
    public let receiver: Receiver

    /// Creates the edge `sender->receiver`.
    public init(_ sender: Sender, _ receiver: Receiver) {
        self.sender = sender
        self.receiver = receiver
    }

    /// EAP-IG name: `a0.h1->a3.h2<q>`, `input->m0`, `m11->logits`.
    public var name: String { "\(sender.name)->\(receiver.name)" }
}

/// The computational graph of a model (design §3): senders, receivers and the edges between them,
/// each edge with a dense index so scores and masks are plain arrays.
///
/// Senders are numbered in topological order (`input`, then per layer its heads and its MLP), so the
/// senders upstream of any receiver are a prefix: edge `(s, r)` has index `edgeOffsets[r] + s`.
public struct CircuitGraph: Sendable {
    public let layers: Int
    public let heads: Int
    /// Senders in topological order.
    public let senders: [Sender]
    /// Receivers in topological order: per layer `a{l}.h{h}<q>`, `<k>`, `<v>` for each head, then
    /// `m{l}`; `logits` last.
    public let receivers: [Receiver]
    /// Index of each receiver's first edge; the last entry is the edge count.
    public let edgeOffsets: [Int]
    private let receiverIndex: [Receiver: Int]

    /// The graph of a model with `layers` layers of `heads` heads.
    public init(layers: Int, heads: Int) {
        self.layers = layers
        self.heads = heads
        var senders: [Sender] = [.input]
        var receivers: [Receiver] = []
        for l in 0..<layers {
            senders += (0..<heads).map { .head(layer: l, head: $0) } + [.mlp(layer: l)]
            for h in 0..<heads { receivers += QKV.allCases.map { .head(layer: l, head: h, port: $0) } }
            receivers.append(.mlp(layer: l))
        }
        receivers.append(.logits)
        self.senders = senders
        self.receivers = receivers
        var offsets = [0]
        for r in receivers { offsets.append(offsets.last! + Self.upstreamCount(r, heads: heads, layers: layers)) }
        edgeOffsets = offsets
        receiverIndex = Dictionary(uniqueKeysWithValues: receivers.enumerated().map { ($1, $0) })
    }

    /// The graph of `config`'s model.
    public init(config: TransformerConfig) { self.init(layers: config.layers, heads: config.heads) }

    /// Number of edges.
    public var edgeCount: Int { edgeOffsets.last! }

    /// How many senders (a prefix of `senders`) feed receiver `r`.
    static func upstreamCount(_ r: Receiver, heads: Int, layers: Int) -> Int {
        switch r {
        case .head(let l, _, _): return 1 + l * (heads + 1)
        case .mlp(let l): return 1 + l * (heads + 1) + heads
        case .logits: return 1 + layers * (heads + 1)
        }
    }

    /// Number of senders feeding the receiver at index `r`.
    public func upstreamCount(receiverAt r: Int) -> Int { edgeOffsets[r + 1] - edgeOffsets[r] }

    /// Index of `receiver` in `receivers`.
    public func index(of receiver: Receiver) -> Int { receiverIndex[receiver]! }

    /// Index of a sender in `senders`.
    public func index(of sender: Sender) -> Int { sender.index(heads: heads) }

    /// The edge with dense index `i`.
    public func edge(_ i: Int) -> Edge {
        // Binary search for the receiver whose edge range holds i.
        var lo = 0, hi = receivers.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if edgeOffsets[mid] <= i { lo = mid } else { hi = mid - 1 }
        }
        return Edge(senders[i - edgeOffsets[lo]], receivers[lo])
    }

    /// Dense index of `edge`, or nil when it is not an edge of this graph.
    public func index(of edge: Edge) -> Int? {
        guard let r = receiverIndex[edge.receiver], isValid(edge.sender) else { return nil }
        let s = index(of: edge.sender)
        return s < upstreamCount(receiverAt: r) ? edgeOffsets[r] + s : nil
    }

    /// Whether `sender` exists in this model.
    private func isValid(_ sender: Sender) -> Bool {
        switch sender {
        case .input: return true
        case .head(let l, let h): return l >= 0 && l < layers && h >= 0 && h < heads
        case .mlp(let l): return l >= 0 && l < layers
        }
    }

    /// The edge named like `a0.h1->a3.h2<q>`, or nil.
    public func edge(named name: String) -> Edge? {
        let parts = name.components(separatedBy: "->")
        guard parts.count == 2, let s = Self.sender(named: parts[0]), let r = Self.receiver(named: parts[1]) else { return nil }
        let e = Edge(s, r)
        return index(of: e) == nil ? nil : e
    }

    /// Parses `input`, `a3.h2`, `m3`.
    public static func sender(named name: String) -> Sender? {
        if name == "input" { return .input }
        if name.hasPrefix("m"), let l = Int(name.dropFirst()) { return .mlp(layer: l) }
        if name.hasPrefix("a") {
            let parts = name.dropFirst().split(separator: ".")
            if parts.count == 2, let l = Int(parts[0]), parts[1].hasPrefix("h"), let h = Int(parts[1].dropFirst()) {
                return .head(layer: l, head: h)
            }
        }
        return nil
    }

    /// Parses `a3.h2<q>`, `m3`, `logits`.
    public static func receiver(named name: String) -> Receiver? {
        if name == "logits" { return .logits }
        if name.hasSuffix(">"), let open = name.lastIndex(of: "<") {
            let port = name[name.index(after: open)..<name.index(before: name.endIndex)]
            guard let qkv = QKV(rawValue: String(port)), case .head(let l, let h)? = sender(named: String(name[..<open])) else { return nil }
            return .head(layer: l, head: h, port: qkv)
        }
        if case .mlp(let l)? = sender(named: name) { return .mlp(layer: l) }
        return nil
    }

    /// The node a receiver belongs to (its head or MLP), or nil for `logits`.
    public static func node(of receiver: Receiver) -> Sender? {
        switch receiver {
        case .head(let l, let h, _): return .head(layer: l, head: h)
        case .mlp(let l): return .mlp(layer: l)
        case .logits: return nil
        }
    }

    /// Receivers belonging to node `sender` (`<q>`, `<k>`, `<v>` of a head; the MLP's input).
    public func receivers(of sender: Sender) -> [Receiver] {
        switch sender {
        case .input: return []
        case .head(let l, let h): return QKV.allCases.map { .head(layer: l, head: h, port: $0) }
        case .mlp(let l): return [.mlp(layer: l)]
        }
    }
}

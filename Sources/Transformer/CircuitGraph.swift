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

/// How a block's MLP reads the residual stream, which decides the MLP's upstream senders.
public enum BlockLayout: String, Sendable, Equatable, Codable {
    /// The MLP reads the stream after the block's attention, so `m{l}` reads the heads of layer l
    /// (GPT-2, Llama).
    case sequential
    /// Attention and MLP read the same stream (GPT-J, GPT-NeoX `use_parallel_residual`), so `m{l}`
    /// reads only the senders before layer l.
    case parallel
}

/// The computational graph of a model (design §3), the one place that numbers its nodes and edges.
///
/// Senders are numbered in topological order (`input`, then per layer its heads and its MLP), so the
/// senders upstream of any receiver are a prefix of `senders`: edge `(s, r)` has dense index
/// `edgeOffsets[r] + s`. Receivers are numbered in topological order: per layer `a{l}.h{h}<q>`,
/// `<k>`, `<v>` for each head, then `m{l}`; `logits` last. Scores and masks are plain arrays in
/// this edge order, and the forward pass stores sender outputs in this sender order.
public struct CircuitGraph: Sendable, Equatable {
    public let layers: Int
    public let heads: Int
    public let blockLayout: BlockLayout
    /// Senders in topological order.
    public let senders: [Sender]
    /// Receivers in topological order.
    public let receivers: [Receiver]
    /// Index of each receiver's first edge; the last entry is the edge count.
    public let edgeOffsets: [Int]
    private let receiverIndex: [Receiver: Int]

    /// The graph of a model with `layers` layers of `heads` heads.
    public init(layers: Int, heads: Int, blockLayout: BlockLayout = .sequential) {
        self.layers = layers
        self.heads = heads
        self.blockLayout = blockLayout
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
        receiverIndex = Dictionary(uniqueKeysWithValues: receivers.enumerated().map { ($1, $0) })
        var offsets = [0]
        for r in receivers {
            let upstream: Int
            switch r {
            case .head(let l, _, _): upstream = Self.firstSender(ofLayer: l, heads: heads)
            case .mlp(let l): upstream = Self.firstSender(ofLayer: l, heads: heads) + (blockLayout == .sequential ? heads : 0)
            case .logits: upstream = senders.count
            }
            offsets.append(offsets.last! + upstream)
        }
        edgeOffsets = offsets
    }

    /// The graph of `config`'s model.
    public init(config: TransformerConfig) {
        self.init(layers: config.layers, heads: config.heads, blockLayout: config.blockLayout)
    }

    public static func == (a: CircuitGraph, b: CircuitGraph) -> Bool {
        a.layers == b.layers && a.heads == b.heads && a.blockLayout == b.blockLayout
    }

    /// Number of edges.
    public var edgeCount: Int { edgeOffsets.last! }

    /// Number of senders feeding the receiver at index `r` (a prefix of `senders`).
    public func upstreamCount(receiverAt r: Int) -> Int { edgeOffsets[r + 1] - edgeOffsets[r] }

    /// Index of `receiver` in `receivers`.
    public func index(of receiver: Receiver) -> Int { receiverIndex[receiver]! }

    /// Index of a sender in `senders` (which must be a sender of this graph).
    public func index(of sender: Sender) -> Int {
        switch sender {
        case .input: return 0
        case .head(let l, let h): return firstSender(ofLayer: l) + h
        case .mlp(let l): return firstSender(ofLayer: l) + heads
        }
    }

    /// Index of layer `layer`'s first head in `senders` (`senders.count` for `layer == layers`): every
    /// sender before it belongs to an earlier layer or is `input`.
    public func firstSender(ofLayer layer: Int) -> Int { Self.firstSender(ofLayer: layer, heads: heads) }

    /// The numbering itself: `input`, then per layer its heads and its MLP.
    private static func firstSender(ofLayer layer: Int, heads: Int) -> Int { 1 + layer * (heads + 1) }

    /// Receivers of block `layer`'s attention: `a{l}.h{h}<q|k|v>` for every head, as a range of `receivers`.
    public func attentionReceivers(ofLayer layer: Int) -> Range<Int> {
        let start = layer * (3 * heads + 1)
        return start..<(start + 3 * heads)
    }

    /// The edge with dense index `i`.
    public func edge(_ i: Int) -> Edge {
        let r = receiver(ofEdge: i)
        return Edge(senders[i - edgeOffsets[r]], receivers[r])
    }

    /// Index (in `receivers`) of the receiver of edge `i`.
    public func receiver(ofEdge i: Int) -> Int {
        // Binary search for the receiver whose edge range holds i.
        var lo = 0, hi = receivers.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if edgeOffsets[mid] <= i { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Dense index of `edge`, or nil when it is not an edge of this graph.
    public func index(of edge: Edge) -> Int? {
        guard let r = receiverIndex[edge.receiver], contains(edge.sender) else { return nil }
        let s = index(of: edge.sender)
        return s < upstreamCount(receiverAt: r) ? edgeOffsets[r] + s : nil
    }

    /// Whether `sender` exists in this model.
    public func contains(_ sender: Sender) -> Bool {
        switch sender {
        case .input: return true
        case .head(let l, let h): return l >= 0 && l < layers && h >= 0 && h < heads
        case .mlp(let l): return l >= 0 && l < layers
        }
    }

    /// The sender named like `a3.h2`, if this model has it.
    public func sender(named name: String) -> Sender? {
        Sender(name: name).flatMap { contains($0) ? $0 : nil }
    }

    /// The receiver named like `a3.h2<q>`, if this model has it.
    public func receiver(named name: String) -> Receiver? {
        Receiver(name: name).flatMap { receiverIndex[$0] == nil ? nil : $0 }
    }

    /// The edge named like `a0.h1->a3.h2<q>`, or nil when this model has no such edge.
    public func edge(named name: String) -> Edge? {
        let parts = name.components(separatedBy: "->")
        guard parts.count == 2, let s = sender(named: parts[0]), let r = receiver(named: parts[1]) else { return nil }
        let e = Edge(s, r)
        return index(of: e) == nil ? nil : e
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

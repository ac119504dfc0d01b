import Foundation
import Transformer

/// Automatic circuit discovery (ACDC, Conmy et al. 2023) as design §6 defines it.
///
/// Starting from the full graph, receivers are visited in reverse topological order; each incoming
/// edge is corrupted on top of the edges already removed and stays removed when the metric moves by
/// less than τ from a reference. With the `current` reference (ACDC as published) that is the graph
/// before the trial (for `kl`: KL_new − KL_current < τ; otherwise |M_new − M_current| < τ), so every
/// removal may cost up to τ and the losses add up over thousands of removals. With the `clean`
/// reference the trial is compared with the full model (KL_new < τ; |M_new − M_clean| < τ): τ bounds
/// the whole circuit's distance from the model, and for a task metric τ = (1 − f)·|M_clean − M_corrupt|
/// keeps faithfulness within 1 ± (1 − f). Receivers whose node has no remaining outgoing edge are
/// skipped. The state can be saved after every receiver and a run resumed from it.
///
/// Serial trials (as published) run in speculative batches: since most edges get removed, a batch
/// evaluates "remove the next edge", "remove the next two", … in one batched forward pass, and
/// decisions are taken in order until the first edge that stays; the trials after it are discarded.
/// The result is exactly that of trying the edges one at a time.
///
/// Grouped trials (a documented variant, for speed) try a receiver's edges in groups, least important
/// first by attribution scores: first all of them at once, and when that moves the metric by τ or
/// more, the longest removable prefix is found by a galloping search, the edge after it is kept, and
/// the rest is tried again. A receiver whose edges can all go costs one pass instead of one per edge;
/// a kept edge costs a few passes. The decisions are those of the same τ test applied to groups, so
/// they are not the serial ones.
///
/// Attributed trials (a second variant, after ACDC++) decide with the gradient at the current graph,
/// taken again at every layer: a receiver's edges predicted to fail the τ test (the metric of the
/// current graph plus ∂M/∂α, compared with the reference: with the current graph, |∂M/∂α| ≥ τ, or for
/// `kl` ∂KL/∂α ≥ τ) stay
/// without a trial (their score is the prediction), and the others are tried as one group, split as
/// grouped trials split when the group fails the τ test. A receiver costs about one pass.
///
/// Nodes first (a documented variant, for speed): before the edges, the heads and MLPs are visited
/// from the last to the first, and each is tried as a whole, all its outgoing edges corrupted at once
/// on top of the nodes already removed (serial, in speculative batches); a node that stays within τ
/// is removed. Edges are then decided as above among the nodes that remain: the receivers of removed
/// nodes are skipped and the edges out of them are already corrupted, so a few hundred node trials
/// replace most of the edge trials.
public final class ACDC {
    /// What a trial's metric is compared with.
    public enum Reference: String, Codable, Sendable, CaseIterable {
        /// The graph before the trial (ACDC as published).
        case current
        /// The full model.
        case clean
    }

    /// How a receiver's incoming edges are tried.
    public enum Trials: String, Codable, Sendable, CaseIterable {
        /// One edge at a time, from the last sender to the first (ACDC as published).
        case serial
        /// In groups ordered by attribution score, least important first, with a galloping search.
        case grouped
        /// Edges the gradient at the current graph predicts to matter stay untried; the rest as a group.
        case attributed
    }

    /// Where a run stands: enough to resume it.
    public struct State: Codable, Sendable {
        /// Threshold.
        public var tau: Double
        /// What trials are compared with.
        public var reference: Reference
        /// How edges are tried.
        public var trials: Trials
        /// Metric of the graph with the removed edges corrupted.
        public var current: Double
        /// Whether nodes are tried before edges.
        public var nodesFirst: Bool
        /// Nodes (senders other than `input`) tried so far, counted from the end of `CircuitGraph.senders`.
        public var nodesDone: Int
        /// Sender indices of the nodes removed whole (their outgoing edges are in `removed`).
        public var removedNodes: [Int]
        /// Receivers finished, counted from the end of `CircuitGraph.receivers`.
        public var receiversDone: Int
        /// Dense indices of removed edges (corrupted in every later run).
        public var removed: [Int]
        /// Edges into skipped receivers: dropped from the circuit, left clean since nothing reads their node.
        public var dropped: [Int]
        /// Metric change measured when each kept edge was tried (its score in the circuit).
        public var keptEffects: [Int: Float]
        /// Edges decided by trials so far.
        public var edgesTried: Int
        /// Patched passes evaluated so far (one per mask).
        public var evaluations: Int
        /// Gradients taken at the current graph so far (attributed trials; each a masked forward and backward pass).
        public var gradients: Int
        /// Attributed trials: the layer the last gradient was taken for and how many edges were removed
        /// then (the first of `removed`), so a resumed run takes the same gradient.
        public var gradientAt: GradientPoint?
        /// Seconds spent so far, over all sessions.
        public var seconds: Double
        /// Of `seconds`, those spent on node trials (the edges' pace is measured without them).
        public var nodeSeconds: Double
        /// Edge count of the graph, to check a resumed state fits the model.
        public var edgeCount: Int
        /// The model, pairs, metric and ablation of the run (absent in states saved before it was recorded).
        public var run: RunIdentity?
    }

    /// Where a gradient of attributed trials was taken.
    public struct GradientPoint: Codable, Sendable, Equatable {
        public var layer: Int
        public var removed: Int
    }

    /// A progress report after each receiver, and after each batch of node trials.
    public struct Progress: Sendable {
        /// Nodes tried so far and of how many (0 of 0 without nodes first).
        public let nodesDone: Int
        public let nodeCount: Int
        /// The last receiver visited (`logits` before the first).
        public let receiver: Receiver
        public let receiversDone: Int
        public let receiverCount: Int
        public let edgesTried: Int
        public let edgesRemoved: Int
        public let seconds: Double
        /// Of `seconds`, those spent on node trials.
        public let nodeSeconds: Double
    }

    public let experiment: Experiment
    /// Most trials evaluated in one batched pass.
    public let maxBatch: Int
    /// Prompt rows per chunk from which a patched pass runs at full speed without batching trials.
    public static let fullSpeedRows = 256
    /// `[edges]` attribution scores that order grouped trials (|score| ascending), or nil.
    public let order: [Float]?
    /// The gradient at the current graph and the layer it was taken for (attributed trials).
    private var predicted: (layer: Int, edges: [Float])?
    /// The run's state; `mask` mirrors `state.removed`.
    public private(set) var state: State
    private var mask: EdgeMask
    /// Remaining outgoing edges per sender.
    private var outgoing: [Int]

    /// A fresh run with threshold `tau` and `reference`, or one resumed from `resume` (whose τ,
    /// reference and trials win); `maxBatch` trades memory (each trial in a batch holds its own
    /// activations) for speed. By default it is 8 when the experiment's chunks are short (fewer than
    /// `fullSpeedRows` prompt rows: a batch of trials makes the matrix products taller), and 1 when
    /// they are not, since a pass is then at full speed on its own and a discarded trial is lost work.
    ///
    /// - Parameters:
    ///   - trials: how a receiver's edges are tried; attributed trials take the gradient at the current
    ///     graph once per layer (`Experiment.gradient(_:through:)`)
    ///   - order: `[edges]` attribution scores for grouped trials (and only for them)
    ///   - nodesFirst: try heads and MLPs whole before their edges
    public init(_ experiment: Experiment, tau: Double, reference: Reference = .current, trials: Trials = .serial, order: [Float]? = nil,
                nodesFirst: Bool = false, resume: State? = nil, maxBatch: Int? = nil) throws {
        self.experiment = experiment
        let rows = experiment.chunks.map { experiment.pairs.clean[$0].reduce(0) { $0 + $1.count } }.max() ?? 0
        self.maxBatch = max(1, maxBatch ?? (rows < Self.fullSpeedRows ? 8 : 1))
        let g = experiment.graph
        if let resume { try Self.validate(resume, graph: g) }
        let identity = RunIdentity(model: experiment.model, pairs: experiment.pairs, metric: experiment.metric, ablation: experiment.ablation)
        try resume?.run.map { try identity.checkResumable(from: $0, state: "ACDC") }
        precondition((order != nil) == (trials == .grouped), "grouped trials, and only they, take an order")
        if let resume, resume.trials != trials {
            throw ModelInputError("the ACDC state was saved by a run with \(resume.trials.rawValue) trials; resume it with \(resume.trials.rawValue) trials")
        }
        if let resume, resume.nodesFirst != nodesFirst {
            throw ModelInputError("the ACDC state was saved by a run \(resume.nodesFirst ? "with" : "without") nodes first; resume it the same way")
        }
        if let order, order.count != g.edgeCount {
            throw ModelInputError("ACDC's order has \(order.count) scores for a graph of \(g.edgeCount) edges")
        }
        self.order = order
        state = resume ?? State(tau: tau, reference: reference, trials: trials, current: experiment.cleanMetric, nodesFirst: nodesFirst,
                                nodesDone: 0, removedNodes: [], receiversDone: 0, removed: [],
                                dropped: [], keptEffects: [:], edgesTried: 0, evaluations: 0, gradients: 0, seconds: 0, nodeSeconds: 0,
                                edgeCount: g.edgeCount)
        state.run = identity
        mask = EdgeMask(graph: g)
        outgoing = [Int](repeating: 0, count: g.senders.count)
        for r in 0..<g.receivers.count { for s in 0..<g.upstreamCount(receiverAt: r) { outgoing[s] += 1 } }
        for e in state.removed { mask[e] = 1 }
        for e in state.removed + state.dropped { outgoing[g.index(of: g.edge(e).sender)] -= 1 }
    }

    /// Checks a saved state field by field against `graph`, so a damaged or edited file is refused
    /// with the field that is wrong instead of trapping later.
    public static func validate(_ state: State, graph g: CircuitGraph) throws {
        guard state.edgeCount == g.edgeCount else {
            throw ModelInputError("ACDC state is for a graph of \(state.edgeCount) edges, this model has \(g.edgeCount)")
        }
        func refuse(_ what: String) -> ModelInputError { ModelInputError("ACDC state is inconsistent: \(what)") }
        guard state.tau.isFinite, state.tau >= 0 else { throw refuse("tau \(state.tau) is not a finite threshold ≥ 0") }
        guard state.current.isFinite else { throw refuse("current metric \(state.current) is not finite") }
        guard (0...g.receivers.count).contains(state.receiversDone) else {
            throw refuse("receivers_done \(state.receiversDone) is outside 0...\(g.receivers.count)")
        }
        let nodes = g.senders.count - 1
        guard (0...(state.nodesFirst ? nodes : 0)).contains(state.nodesDone), state.receiversDone == 0 || state.nodesDone == (state.nodesFirst ? nodes : 0) else {
            throw refuse("nodes_done \(state.nodesDone) is outside 0...\(state.nodesFirst ? nodes : 0) or the edges began before the nodes were done")
        }
        // Removed nodes are among those tried (the last nodesDone senders).
        if let bad = state.removedNodes.first(where: { !((g.senders.count - state.nodesDone)..<g.senders.count).contains($0) }) {
            throw refuse("removed node \(bad) was not tried yet")
        }
        if let point = state.gradientAt, !(0...g.layers).contains(point.layer) || !(0...state.removed.count).contains(point.removed) {
            throw refuse("gradient_at (layer \(point.layer), removed \(point.removed)) does not fit the graph or the removed edges")
        }
        guard state.edgesTried >= 0, state.edgesTried <= g.edgeCount, state.evaluations >= 0, state.gradients >= 0, state.seconds.isFinite,
              (0...state.seconds).contains(state.nodeSeconds) else {
            throw refuse("edges tried \(state.edgesTried), evaluations \(state.evaluations), seconds \(state.seconds) or node seconds \(state.nodeSeconds) out of range")
        }
        let listed = state.removed + state.dropped + Array(state.keptEffects.keys)
        if let bad = listed.first(where: { !(0..<g.edgeCount).contains($0) }) {
            throw refuse("edge index \(bad) is outside 0..<\(g.edgeCount)")
        }
        guard Set(listed).count == listed.count else { throw refuse("an edge is listed twice among removed, dropped and kept") }
        // Decisions are only taken at receivers already visited (the last receiversDone, counted from the
        // end), or for a removed node's edges.
        let visited = g.edgeOffsets[g.receivers.count - state.receiversDone]..<g.edgeCount
        let removedNodes = Set(state.removedNodes)
        if let bad = listed.first(where: { !visited.contains($0) && !removedNodes.contains(g.index(of: g.edge($0).sender)) }) {
            throw refuse("edge \(g.edge(bad).name) has a decision but its receiver was not visited yet")
        }
    }

    /// Runs until every node (with nodes first) and every receiver is visited, calling `checkpoint`
    /// after each receiver and each node.
    ///
    /// - Returns: dense indices of the edges that remain (the circuit, before pruning)
    public func run(checkpoint: ((State, Progress) -> Void)? = nil) -> [Int] {
        let g = experiment.graph
        let count = g.receivers.count, nodeCount = state.nodesFirst ? g.senders.count - 1 : 0
        var batch = 1
        func report(_ receiver: Receiver) {
            checkpoint?(state, Progress(nodesDone: state.nodesDone, nodeCount: nodeCount, receiver: receiver, receiversDone: state.receiversDone,
                                        receiverCount: count, edgesTried: state.edgesTried, edgesRemoved: state.removed.count, seconds: state.seconds,
                                        nodeSeconds: state.nodeSeconds))
        }
        if state.nodesDone < nodeCount {
            // Nodes from the last: node i of the candidates is sender `senders.count − 1 − nodesDone − i`.
            let first = g.senders.count - 1 - state.nodesDone
            let nodes = Array(stride(from: first, through: 1, by: -1))
            let outgoingEdges = nodes.map { s in (0..<count).filter { g.upstreamCount(receiverAt: $0) > s }.map { g.edgeOffsets[$0] + s } }
            var start = Date()
            serialTrials(outgoingEdges, batch: &batch) { i, effect in
                if effect == nil {
                    state.removedNodes.append(nodes[i])
                    state.edgesTried += outgoingEdges[i].count
                }
                state.nodesDone += 1
                let spent = Date().timeIntervalSince(start)
                (state.seconds, state.nodeSeconds) = (state.seconds + spent, state.nodeSeconds + spent)
                start = Date()
                report(.logits)
            }
        }
        // Edge trials differ from the graph after the node trials only from the receiver they visit on:
        // runs start from that graph's run.
        if state.nodesFirst { experiment.startRuns(from: mask) }
        defer { if state.nodesFirst { experiment.startRuns(from: nil) } }
        while state.receiversDone < count {
            let start = Date()
            let r = count - 1 - state.receiversDone
            let receiver = g.receivers[r]
            // The edges into `r` not decided yet (those out of removed nodes are).
            let open = (0..<g.upstreamCount(receiverAt: r)).map { g.edgeOffsets[r] + $0 }.filter { mask[$0] == 0 }
            let nodeAlive = receiver.node.map { outgoing[g.index(of: $0)] > 0 } ?? true
            if !nodeAlive {
                for e in open {
                    state.dropped.append(e)
                    outgoing[g.index(of: g.edge(e).sender)] -= 1
                }
            } else if let order {
                // Least important first; ties from the last sender, as serial trials go.
                removeInGroups(open.sorted { (abs(order[$0]), -$0) < (abs(order[$1]), -$1) })
            } else if state.trials == .attributed {
                attributedTrials(open, layer: min(receiver.layer, g.layers))
            } else {
                // One edge at a time from the last sender, as published.
                let candidates = open.reversed().map { [$0] }
                serialTrials(candidates, batch: &batch) { i, effect in
                    state.edgesTried += 1
                    if let effect { state.keptEffects[candidates[i][0]] = effect }
                }
            }
            state.receiversDone += 1
            state.seconds += Date().timeIntervalSince(start)
            report(receiver)
        }
        let dropped = Set(state.dropped)
        return (0..<g.edgeCount).filter { mask[$0] == 0 && !dropped.contains($0) }
    }

    /// Whether a trial that measured `value` stays within τ of the reference.
    private func accepts(_ value: Double) -> Bool {
        let base = state.reference == .clean ? experiment.cleanMetric : state.current
        let change = experiment.metric == .kl ? value - base : abs(value - base)
        return change < state.tau
    }

    /// Metrics of the current graph with each group of edges corrupted on top of it, one pass per group.
    private func evaluate(removing groups: [[Int]]) -> [Double] {
        state.evaluations += groups.count
        return experiment.evaluate(groups.map { group in
            var trial = mask
            for e in group { trial[e] = 1 }
            return trial
        })
    }

    /// Corrupts `edges` for good; `value` is the metric measured with them corrupted.
    private func remove(_ edges: some Collection<Int>, value: Double) {
        let g = experiment.graph
        for e in edges {
            mask[e] = 1
            state.removed.append(e)
            outgoing[g.index(of: g.edge(e).sender)] -= 1
        }
        if !edges.isEmpty { state.current = value }
    }

    /// Tries `candidates` one at a time in order, each a group of edges corrupted together (an edge, or
    /// a node's outgoing edges), in speculative batches of up to `maxBatch` (`batch` carries the batch
    /// size from one call to the next): a batch evaluates removing the next one, the next two, … in
    /// one batched pass, and decisions are taken in order until the first that stays; the trials after
    /// it assumed it removed and are discarded. `decided` gets each candidate's index in order with nil
    /// when it was removed, or the metric change it caused when it stays.
    private func serialTrials(_ candidates: [[Int]], batch: inout Int, decided: (Int, Float?) -> Void) {
        var index = 0
        while index < candidates.count {
            let k = min(batch, candidates.count - index)
            let values = evaluate(removing: (1...k).map { candidates[index..<(index + $0)].flatMap { $0 } })
            var accepted = 0
            for j in 0..<k {
                guard accepts(values[j]) else {
                    decided(index + j, Float(values[j] - state.current))
                    break  // the later trials assumed this one removed
                }
                remove(candidates[index + j], value: values[j])
                decided(index + j, nil)
                accepted += 1
            }
            index += min(accepted + 1, k)
            batch = accepted == k ? min(maxBatch, 2 * batch) : max(1, accepted)
        }
    }

    /// The edges `open` of one receiver at `layer` by the gradient at the current graph (taken again
    /// when the visit reaches a new layer, through that layer only): those predicted to fail the τ test
    /// stay, each scored with its prediction; the others are removed in groups (`removeInGroups`),
    /// smallest prediction first.
    private func attributedTrials(_ open: [Int], layer: Int) {
        let g = experiment.graph
        if predicted == nil, let point = state.gradientAt, point.layer == layer {
            // Resumed within a layer: the gradient of that layer, at the graph it was taken at.
            var then = EdgeMask(graph: g)
            for e in state.removed.prefix(point.removed) { then[e] = 1 }
            predicted = (layer, experiment.gradient(then, through: layer).edges)
        }
        if predicted?.layer != layer {
            predicted = (layer, experiment.gradient(mask, through: layer).edges)
            state.gradients += 1
            state.gradientAt = GradientPoint(layer: layer, removed: state.removed.count)
        }
        let edges = predicted!.edges
        // Predicted to fail the τ test from the current graph: with the current reference |∂M/∂α| ≥ τ; with
        // the clean one, once removals have used most of τ, any edge that moves the metric further away.
        let (staying, tried) = open.reduce(into: ([Int](), [Int]())) { sides, e in
            if accepts(state.current + Double(edges[e])) { sides.1.append(e) } else { sides.0.append(e) }
        }
        for e in staying { state.keptEffects[e] = edges[e] }
        state.edgesTried += staying.count
        removeInGroups(tried.sorted { (abs(edges[$0]), -$0) < (abs(edges[$1]), -$1) })
    }

    /// Tries `candidates` (ordered, least important first) in groups: all that are left at once; when
    /// they cannot all go, the longest removable prefix goes, the next edge stays with the metric
    /// change it caused as its effect, and the rest is tried again.
    ///
    /// The prefix is found by a galloping search whose first probe is the length of the prefix found
    /// before (half the edges the first time), doubled while removals pass and then bisected: where
    /// kept edges are dense a kept edge costs two or three passes instead of log₂ of the edges left.
    private func removeInGroups(_ candidates: [Int]) {
        var index = 0, guess = (candidates.count + 1) / 2
        while index < candidates.count {
            let rest = candidates[index...]
            let all = evaluate(removing: [Array(rest)])[0]
            if accepts(all) {
                state.edgesTried += rest.count
                remove(rest, value: all)
                return
            }
            // Removing `low` edges of the rest is accepted (0: nothing removed), removing `high` is not.
            var low = 0, high = rest.count, lowValue = state.current, highValue = all
            var probe = min(max(1, guess), high - 1), galloping = true
            while high - low > 1 {
                let value = evaluate(removing: [Array(rest.prefix(probe))])[0]
                if accepts(value) { (low, lowValue) = (probe, value) } else { (high, highValue, galloping) = (probe, value, false) }
                probe = galloping ? min(2 * probe, high - 1) : (low + high) / 2
                if probe <= low { probe = (low + high) / 2 }
            }
            state.edgesTried += low + 1
            remove(rest.prefix(low), value: lowValue)
            state.keptEffects[candidates[index + low]] = Float(highValue - lowValue)
            index += low + 1
            guess = low + 1
        }
    }
}

extension ACDC.State {
    /// Decodes a saved state; states saved before the reference, trials and nodes first existed compared
    /// with the current graph one edge at a time, edges only (and those before node seconds were kept
    /// count none).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tau = try c.decode(Double.self, forKey: .tau)
        reference = try c.decodeIfPresent(ACDC.Reference.self, forKey: .reference) ?? .current
        trials = try c.decodeIfPresent(ACDC.Trials.self, forKey: .trials) ?? .serial
        current = try c.decode(Double.self, forKey: .current)
        nodesFirst = try c.decodeIfPresent(Bool.self, forKey: .nodesFirst) ?? false
        nodesDone = try c.decodeIfPresent(Int.self, forKey: .nodesDone) ?? 0
        removedNodes = try c.decodeIfPresent([Int].self, forKey: .removedNodes) ?? []
        receiversDone = try c.decode(Int.self, forKey: .receiversDone)
        removed = try c.decode([Int].self, forKey: .removed)
        dropped = try c.decode([Int].self, forKey: .dropped)
        keptEffects = try c.decode([Int: Float].self, forKey: .keptEffects)
        edgesTried = try c.decode(Int.self, forKey: .edgesTried)
        evaluations = try c.decodeIfPresent(Int.self, forKey: .evaluations) ?? edgesTried
        gradients = try c.decodeIfPresent(Int.self, forKey: .gradients) ?? 0
        gradientAt = try c.decodeIfPresent(ACDC.GradientPoint.self, forKey: .gradientAt)
        seconds = try c.decode(Double.self, forKey: .seconds)
        nodeSeconds = try c.decodeIfPresent(Double.self, forKey: .nodeSeconds) ?? 0
        edgeCount = try c.decode(Int.self, forKey: .edgeCount)
        run = try c.decodeIfPresent(RunIdentity.self, forKey: .run)
    }
}

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
/// taken again at every layer: a receiver's edges whose predicted change |∂M/∂α| is τ or more stay
/// without a trial (their score is the prediction), and the others are tried as one group, split as
/// grouped trials split when the group fails the τ test. A receiver costs about one pass.
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

    /// A progress report after each receiver.
    public struct Progress: Sendable {
        public let receiver: Receiver
        public let receiversDone: Int
        public let receiverCount: Int
        public let edgesTried: Int
        public let edgesRemoved: Int
        public let seconds: Double
    }

    public let experiment: Experiment
    /// Most trials evaluated in one batched pass.
    public let maxBatch: Int
    /// `[edges]` attribution scores that order grouped trials (|score| ascending), or nil.
    public let order: [Float]?
    /// `[edges]` ∂M/∂α at a mask, for attributed trials, or nil.
    private let gradient: ((EdgeMask) -> [Float])?
    /// The gradient at the current graph and the layer it was taken for (attributed trials).
    private var predicted: (layer: Int, edges: [Float])?
    /// The run's state; `mask` mirrors `state.removed`.
    public private(set) var state: State
    private var mask: EdgeMask
    /// Remaining outgoing edges per sender.
    private var outgoing: [Int]

    /// A fresh run with threshold `tau` and `reference`, or one resumed from `resume` (whose τ,
    /// reference and trials win); `maxBatch` trades memory (each trial in a batch holds its own
    /// activations) for speed. Grouped trials (`order` given) are ordered by `order`'s magnitudes;
    /// attributed trials (`gradient` given) take the gradient at the current graph once per layer.
    ///
    /// - Parameters:
    ///   - order: `[edges]` attribution scores for grouped trials, or nil
    ///   - gradient: `[edges]` ∂M/∂α under a mask (`MaskedGradient` on the experiment's pairs) for attributed trials, or nil
    public init(_ experiment: Experiment, tau: Double, reference: Reference = .current, order: [Float]? = nil,
                gradient: ((EdgeMask) -> [Float])? = nil, resume: State? = nil, maxBatch: Int = 8) throws {
        self.experiment = experiment
        self.maxBatch = max(1, maxBatch)
        let g = experiment.graph
        if let resume { try Self.validate(resume, graph: g) }
        let identity = RunIdentity(model: experiment.model, pairs: experiment.pairs, metric: experiment.metric, ablation: experiment.ablation)
        try resume?.run.map { try identity.checkResumable(from: $0, state: "ACDC") }
        precondition(order == nil || gradient == nil, "grouped trials take an order, attributed trials a gradient, not both")
        let trials: Trials = order != nil ? .grouped : gradient != nil ? .attributed : .serial
        if let resume, resume.trials != trials {
            throw ModelInputError("the ACDC state was saved by a run with \(resume.trials.rawValue) trials; resume it with \(resume.trials.rawValue) trials")
        }
        if let order, order.count != g.edgeCount {
            throw ModelInputError("ACDC's order has \(order.count) scores for a graph of \(g.edgeCount) edges")
        }
        self.order = order
        self.gradient = gradient
        state = resume ?? State(tau: tau, reference: reference, trials: trials, current: experiment.cleanMetric, receiversDone: 0, removed: [],
                                dropped: [], keptEffects: [:], edgesTried: 0, evaluations: 0, gradients: 0, seconds: 0, edgeCount: g.edgeCount)
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
        if let point = state.gradientAt, !(0...g.layers).contains(point.layer) || !(0...state.removed.count).contains(point.removed) {
            throw refuse("gradient_at (layer \(point.layer), removed \(point.removed)) does not fit the graph or the removed edges")
        }
        guard state.edgesTried >= 0, state.edgesTried <= g.edgeCount, state.evaluations >= 0, state.gradients >= 0, state.seconds.isFinite, state.seconds >= 0 else {
            throw refuse("edges tried \(state.edgesTried), evaluations \(state.evaluations) or seconds \(state.seconds) out of range")
        }
        let listed = state.removed + state.dropped + Array(state.keptEffects.keys)
        if let bad = listed.first(where: { !(0..<g.edgeCount).contains($0) }) {
            throw refuse("edge index \(bad) is outside 0..<\(g.edgeCount)")
        }
        guard Set(listed).count == listed.count else { throw refuse("an edge is listed twice among removed, dropped and kept") }
        // Decisions are only taken at receivers already visited (the last receiversDone, counted from the end).
        let visited = g.edgeOffsets[g.receivers.count - state.receiversDone]..<g.edgeCount
        if let bad = listed.first(where: { !visited.contains($0) }) {
            throw refuse("edge \(g.edge(bad).name) has a decision but its receiver was not visited yet")
        }
    }

    /// Runs until every receiver is visited, calling `checkpoint` after each receiver.
    ///
    /// - Returns: dense indices of the edges that remain (the circuit, before pruning)
    public func run(checkpoint: ((State, Progress) -> Void)? = nil) -> [Int] {
        let g = experiment.graph
        let count = g.receivers.count
        var batch = 1
        while state.receiversDone < count {
            let start = Date()
            let r = count - 1 - state.receiversDone
            let receiver = g.receivers[r]
            let nodeAlive = receiver.node.map { outgoing[g.index(of: $0)] > 0 } ?? true
            if !nodeAlive {
                for s in 0..<g.upstreamCount(receiverAt: r) {
                    state.dropped.append(g.edgeOffsets[r] + s)
                    outgoing[s] -= 1
                }
            } else if let order {
                groupedTrials(receiverAt: r, order: order)
            } else if let gradient {
                attributedTrials(receiverAt: r, gradient: gradient)
            } else {
                serialTrials(receiverAt: r, batch: &batch)
            }
            state.receiversDone += 1
            state.seconds += Date().timeIntervalSince(start)
            checkpoint?(state, Progress(receiver: receiver, receiversDone: state.receiversDone, receiverCount: count,
                                        edgesTried: state.edgesTried, edgesRemoved: state.removed.count, seconds: state.seconds))
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

    /// ACDC as published: receiver `r`'s edges one at a time from the last sender, in speculative
    /// batches of up to `maxBatch` (`batch` carries the batch size from one receiver to the next).
    private func serialTrials(receiverAt r: Int, batch: inout Int) {
        let g = experiment.graph
        let candidates = Array(stride(from: g.upstreamCount(receiverAt: r) - 1, through: 0, by: -1)).map { g.edgeOffsets[r] + $0 }
        var index = 0
        while index < candidates.count {
            let k = min(batch, candidates.count - index)
            let values = evaluate(removing: (1...k).map { Array(candidates[index..<(index + $0)]) })
            var accepted = 0
            for j in 0..<k {
                let e = candidates[index + j]
                state.edgesTried += 1
                guard accepts(values[j]) else {
                    state.keptEffects[e] = Float(values[j] - state.current)
                    break  // the later trials assumed this edge removed
                }
                remove([e], value: values[j])
                accepted += 1
            }
            index += min(accepted + 1, k)
            batch = accepted == k ? min(maxBatch, 2 * batch) : max(1, accepted)
        }
    }

    /// Receiver `r`'s edges in groups, least important first by `order` (`removeInGroups`).
    private func groupedTrials(receiverAt r: Int, order: [Float]) {
        let g = experiment.graph
        // Least important first; ties from the last sender, as serial trials go.
        removeInGroups((0..<g.upstreamCount(receiverAt: r)).map { g.edgeOffsets[r] + $0 }
            .sorted { (abs(order[$0]), -$0) < (abs(order[$1]), -$1) })
    }

    /// Receiver `r`'s edges by the gradient at the current graph (taken again when the visit reaches
    /// a new layer): those predicted to move the metric by τ or more stay, each scored with its
    /// prediction; the others are removed in groups (`removeInGroups`), smallest prediction first.
    private func attributedTrials(receiverAt r: Int, gradient: (EdgeMask) -> [Float]) {
        let g = experiment.graph, layer = g.receivers[r].layer
        if predicted == nil, let point = state.gradientAt, point.layer == layer {
            // Resumed within a layer: the gradient of that layer, at the graph it was taken at.
            var then = EdgeMask(graph: g)
            for e in state.removed.prefix(point.removed) { then[e] = 1 }
            predicted = (layer, gradient(then))
        }
        if predicted?.layer != layer {
            predicted = (layer, gradient(mask))
            state.gradients += 1
            state.gradientAt = GradientPoint(layer: layer, removed: state.removed.count)
        }
        let edges = predicted!.edges
        let incoming = (0..<g.upstreamCount(receiverAt: r)).map { g.edgeOffsets[r] + $0 }
        let staying = incoming.filter { Double(abs(edges[$0])) >= state.tau }
        for e in staying { state.keptEffects[e] = edges[e] }
        state.edgesTried += staying.count
        removeInGroups(incoming.filter { Double(abs(edges[$0])) < state.tau }.sorted { (abs(edges[$0]), -$0) < (abs(edges[$1]), -$1) })
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
    /// Decodes a saved state; states saved before the reference and trials existed compared with the
    /// current graph one edge at a time.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tau = try c.decode(Double.self, forKey: .tau)
        reference = try c.decodeIfPresent(ACDC.Reference.self, forKey: .reference) ?? .current
        trials = try c.decodeIfPresent(ACDC.Trials.self, forKey: .trials) ?? .serial
        current = try c.decode(Double.self, forKey: .current)
        receiversDone = try c.decode(Int.self, forKey: .receiversDone)
        removed = try c.decode([Int].self, forKey: .removed)
        dropped = try c.decode([Int].self, forKey: .dropped)
        keptEffects = try c.decode([Int: Float].self, forKey: .keptEffects)
        edgesTried = try c.decode(Int.self, forKey: .edgesTried)
        evaluations = try c.decodeIfPresent(Int.self, forKey: .evaluations) ?? edgesTried
        gradients = try c.decodeIfPresent(Int.self, forKey: .gradients) ?? 0
        gradientAt = try c.decodeIfPresent(ACDC.GradientPoint.self, forKey: .gradientAt)
        seconds = try c.decode(Double.self, forKey: .seconds)
        edgeCount = try c.decode(Int.self, forKey: .edgeCount)
        run = try c.decodeIfPresent(RunIdentity.self, forKey: .run)
    }
}

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
/// Trials run in speculative batches: since most edges get removed, a batch evaluates "remove the next
/// edge", "remove the next two", … in one batched forward pass, and decisions are taken in order until
/// the first edge that stays; the trials after it are discarded. The result is exactly that of trying
/// the edges one at a time.
public final class ACDC {
    /// What a trial's metric is compared with.
    public enum Reference: String, Codable, Sendable, CaseIterable {
        /// The graph before the trial (ACDC as published).
        case current
        /// The full model.
        case clean
    }

    /// Where a run stands: enough to resume it.
    public struct State: Codable, Sendable {
        /// Threshold.
        public var tau: Double
        /// What trials are compared with.
        public var reference: Reference
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
        /// Edges tried so far.
        public var edgesTried: Int
        /// Seconds spent so far, over all sessions.
        public var seconds: Double
        /// Edge count of the graph, to check a resumed state fits the model.
        public var edgeCount: Int
        /// The model, pairs, metric and ablation of the run (absent in states saved before it was recorded).
        public var run: RunIdentity?
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
    /// The run's state; `mask` mirrors `state.removed`.
    public private(set) var state: State
    private var mask: EdgeMask
    /// Remaining outgoing edges per sender.
    private var outgoing: [Int]

    /// A fresh run with threshold `tau` and `reference`, or one resumed from `resume` (whose τ and
    /// reference win); `maxBatch` trades memory (each trial in a batch holds its own activations) for speed.
    public init(_ experiment: Experiment, tau: Double, reference: Reference = .current, resume: State? = nil, maxBatch: Int = 8) throws {
        self.experiment = experiment
        self.maxBatch = max(1, maxBatch)
        let g = experiment.graph
        if let resume { try Self.validate(resume, graph: g) }
        let identity = RunIdentity(model: experiment.model, pairs: experiment.pairs, metric: experiment.metric, ablation: experiment.ablation)
        try resume?.run.map { try identity.checkResumable(from: $0, state: "ACDC") }
        state = resume ?? State(tau: tau, reference: reference, current: experiment.cleanMetric, receiversDone: 0, removed: [], dropped: [], keptEffects: [:], edgesTried: 0,
                                seconds: 0, edgeCount: g.edgeCount)
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
        guard state.edgesTried >= 0, state.edgesTried <= g.edgeCount, state.seconds.isFinite, state.seconds >= 0 else {
            throw refuse("edges tried \(state.edgesTried) or seconds \(state.seconds) out of range")
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
        let g = experiment.graph, tau = state.tau, isKL = experiment.metric == .kl
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
            } else {
                let candidates = Array(stride(from: g.upstreamCount(receiverAt: r) - 1, through: 0, by: -1))
                var index = 0
                while index < candidates.count {
                    let k = min(batch, candidates.count - index)
                    var masks: [EdgeMask] = []
                    var trial = mask
                    for j in 0..<k {
                        trial[g.edgeOffsets[r] + candidates[index + j]] = 1
                        masks.append(trial)
                    }
                    let values = experiment.evaluate(masks)
                    var accepted = 0
                    for j in 0..<k {
                        let s = candidates[index + j], e = g.edgeOffsets[r] + s
                        state.edgesTried += 1
                        let base = state.reference == .clean ? experiment.cleanMetric : state.current
                        let change = isKL ? values[j] - base : abs(values[j] - base)
                        if change < tau {
                            mask[e] = 1
                            state.current = values[j]
                            state.removed.append(e)
                            outgoing[s] -= 1
                            accepted += 1
                        } else {
                            state.keptEffects[e] = Float(values[j] - state.current)
                            break  // the later trials assumed this edge removed
                        }
                    }
                    index += min(accepted + 1, k)
                    batch = accepted == k ? min(maxBatch, 2 * batch) : max(1, accepted)
                }
            }
            state.receiversDone += 1
            state.seconds += Date().timeIntervalSince(start)
            checkpoint?(state, Progress(receiver: receiver, receiversDone: state.receiversDone, receiverCount: count,
                                        edgesTried: state.edgesTried, edgesRemoved: state.removed.count, seconds: state.seconds))
        }
        let dropped = Set(state.dropped)
        return (0..<g.edgeCount).filter { mask[$0] == 0 && !dropped.contains($0) }
    }
}

extension ACDC.State {
    /// Decodes a saved state; states saved before the reference existed compared with the current graph.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tau = try c.decode(Double.self, forKey: .tau)
        reference = try c.decodeIfPresent(ACDC.Reference.self, forKey: .reference) ?? .current
        current = try c.decode(Double.self, forKey: .current)
        receiversDone = try c.decode(Int.self, forKey: .receiversDone)
        removed = try c.decode([Int].self, forKey: .removed)
        dropped = try c.decode([Int].self, forKey: .dropped)
        keptEffects = try c.decode([Int: Float].self, forKey: .keptEffects)
        edgesTried = try c.decode(Int.self, forKey: .edgesTried)
        seconds = try c.decode(Double.self, forKey: .seconds)
        edgeCount = try c.decode(Int.self, forKey: .edgeCount)
        run = try c.decodeIfPresent(RunIdentity.self, forKey: .run)
    }
}

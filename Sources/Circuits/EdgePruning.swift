import Foundation
import Kernels
import Transformer

/// Learned edge masks (Edge Pruning, Bhaskar et al. 2024; design §10): one hard-concrete gate per
/// edge, trained with Adam so that the model with closed gates' edges corrupted stays close to the
/// clean model (by default KL(p_clean ‖ p_masked); or the task metric's squared gap to the clean
/// model's, `loss`), while the expected number of open gates follows a target that falls from the
/// start's count to `targetEdges` during the warm-up.
///
/// The sparsity constraint is kept by projection: after every Adam step all log a move by the same
/// amount, found by bisection, so that the expected open gates equal the step's target. (A Lagrangian
/// with multipliers ascending on the gap, as published, lagged far behind on SmolLM2 in the tens of
/// steps a CPU affords: 17,137 expected open gates against a target of 1,000 after 40 steps, and the
/// gates trained with that many edges open ranked a 1,000-edge circuit badly.) The shift keeps the
/// gates' order and Adam's moments; the loss's gradient alone decides which gates open.
///
/// A gate's coefficient is α = 1 − z, with z from the hard concrete distribution (Louizos et al.
/// 2018): `s = σ((log u − log(1 − u) + log a)/β)`, `z = min(1, max(0, s·(r − l) + l))`. The gradient
/// of the KL with respect to every α comes from one masked run and its backward pass
/// (`MaskedGradient`); `∂z/∂log a = (r − l)·s(1 − s)/β` where z is not clamped. Runs are
/// deterministic for a seed (the gate noise of step k comes from the seed and k alone) and can be
/// resumed from a saved `State`.
public final class EdgePruning {
    /// The hard concrete's stretch interval (l, r) and temperature β.
    static let lower: Float = -0.1, upper: Float = 1.1, beta: Float = 2.0 / 3.0

    /// Training options.
    public struct Options: Codable, Sendable, Equatable {
        /// Expected open gates at the end of the warm-up.
        public var targetEdges: Int
        /// Optimizer steps, each on `pairsPerStep` of the training pairs.
        public var steps: Int
        /// Adam's step size for log a.
        public var learningRate: Float
        /// Fraction of the steps over which the target falls linearly from the gates' expected count at
        /// the start to `targetEdges`.
        public var warmup: Double
        /// log a of every gate at the start, when there is no warm start.
        public var initialLogAlpha: Float
        /// Seed of the gate noise.
        public var seed: UInt64
        /// Pairs per forward/backward chunk.
        public var chunkSize: Int
        /// Pairs each step's gradient runs, in whole chunks taken in turn (a minibatch); nil: every pair.
        public var pairsPerStep: Int?
        /// What the gates are trained to keep: `kl` for KL(p_clean ‖ p_masked), another metric m for
        /// (m_masked − m_clean)², both over the step's pairs.
        public var loss: Metric

        /// Options with the defaults used by `circuits discover --method prune`.
        public init(targetEdges: Int, steps: Int = 100, learningRate: Float = 0.1, warmup: Double = 0.5,
                    initialLogAlpha: Float = 3, seed: UInt64 = 0, chunkSize: Int = 32, pairsPerStep: Int? = 32, loss: Metric = .kl) {
            self.targetEdges = targetEdges
            self.steps = steps
            self.learningRate = learningRate
            self.warmup = warmup
            self.initialLogAlpha = initialLogAlpha
            self.seed = seed
            self.chunkSize = chunkSize
            self.pairsPerStep = pairsPerStep
            self.loss = loss
        }

        /// Decodes options; states saved before `pairs_per_step` and `loss` existed ran every pair on KL.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(targetEdges: try c.decode(Int.self, forKey: .targetEdges), steps: try c.decode(Int.self, forKey: .steps),
                      learningRate: try c.decode(Float.self, forKey: .learningRate), warmup: try c.decode(Double.self, forKey: .warmup),
                      initialLogAlpha: try c.decode(Float.self, forKey: .initialLogAlpha), seed: try c.decode(UInt64.self, forKey: .seed),
                      chunkSize: try c.decode(Int.self, forKey: .chunkSize),
                      pairsPerStep: try c.decodeIfPresent(Int.self, forKey: .pairsPerStep),
                      loss: try c.decodeIfPresent(Metric.self, forKey: .loss) ?? .kl)
        }

        enum CodingKeys: String, CodingKey {
            case targetEdges = "target_edges"
            case steps
            case learningRate = "learning_rate"
            case warmup
            case initialLogAlpha = "initial_log_alpha"
            case seed
            case chunkSize = "chunk_size"
            case pairsPerStep = "pairs_per_step"
            case loss
        }
    }

    /// Where a run stands: enough to resume it and get the same result.
    public struct State: Codable, Sendable {
        public var options: Options
        /// Steps done.
        public var step: Int
        /// `[edges]` log a of every gate.
        public var logAlpha: [Float]
        /// `[edges]` Adam's running means of the gradient and of its square.
        var adamFirst: [Float]
        var adamSecond: [Float]
        /// Seconds spent so far, over all sessions.
        public var seconds: Double
        /// Edge count of the graph, to check a resumed state fits the model.
        public var graphEdges: Int
        /// Expected open gates at step 0, where the target schedule starts.
        public var startEdges: Double
        /// The model, pairs and ablation of the run (absent in states saved before it was recorded).
        public var run: RunIdentity?

        enum CodingKeys: String, CodingKey {
            case options, step, run
            case startEdges = "start_edges"
            case logAlpha = "log_alpha"
            case adamFirst = "adam_first"
            case adamSecond = "adam_second"
            case seconds
            case graphEdges = "graph_edges"
        }
    }

    /// A progress report after a step.
    public struct Progress: Sendable {
        public let step: Int
        public let steps: Int
        /// The loss (`Options.loss`) on this step's pairs under its sampled gates.
        public let loss: Double
        /// Expected open gates under which this step's gates were drawn (the previous step's target).
        public let expectedEdges: Double
        /// The expected open gates after this step.
        public let target: Double
        public let seconds: Double
    }

    public let gradient: MaskedGradient
    /// The run's state: the gates and the optimizer.
    public private(set) var state: State

    /// A run on `pairs`; `warmStart` (scores of every edge, e.g. EAP-IG's) opens the gates of the
    /// edges with the largest |score| wider at the start; `resume` continues a saved run with its own
    /// options (`options` is then ignored).
    public init(model: TransformerModel, pairs: PairBatch, ablation: Ablation = .resample, options: Options, warmStart: [Float]? = nil,
                resume: State? = nil) throws {
        let edges = model.graph.edgeCount
        // A resumed run keeps its own options, so those are the ones checked.
        let used = resume?.options ?? options
        guard used.targetEdges >= 1, used.targetEdges <= edges else {
            throw ModelInputError("target of \(used.targetEdges) edges is outside 1...\(edges)")
        }
        guard used.steps >= 1 else { throw ModelInputError("edge pruning needs at least one step, got \(used.steps)") }
        if let perStep = used.pairsPerStep, perStep < 1 { throw ModelInputError("pairs per step must be at least 1, got \(perStep)") }
        guard used.learningRate.isFinite, used.learningRate > 0, used.warmup.isFinite, used.initialLogAlpha.isFinite else {
            throw ModelInputError("edge pruning options must be finite, and the learning rate positive")
        }
        gradient = try MaskedGradient(model: model, pairs: pairs, metric: used.loss, ablation: ablation, chunkSize: used.chunkSize,
                                      cachesChunks: true)
        let identity = RunIdentity(model: model, pairs: pairs, metric: used.loss, ablation: ablation)
        if let resume {
            try resume.run.map { try identity.checkResumable(from: $0, state: "edge pruning") }
            guard resume.graphEdges == edges, resume.logAlpha.count == edges, resume.adamFirst.count == edges,
                  resume.adamSecond.count == edges else {
                throw ModelInputError("edge pruning state is for a graph of \(resume.graphEdges) edges; this model has \(edges)")
            }
            guard (0...used.steps).contains(resume.step), (resume.logAlpha + resume.adamFirst + resume.adamSecond).allSatisfy(\.isFinite),
                  resume.startEdges.isFinite else {
                throw ModelInputError("edge pruning state is inconsistent: step \(resume.step) of \(used.steps), or a value that is not finite")
            }
            state = resume
            state.run = identity
            return
        }
        var logAlpha = [Float](repeating: options.initialLogAlpha, count: edges)
        if let warmStart {
            guard warmStart.count == edges else { throw ModelInputError("warm start has \(warmStart.count) scores; the graph has \(edges) edges") }
            // Rank by |score|: the best edges start wide open, the rest fall off with their rank.
            for (rank, e) in Selection.ranked(warmStart).enumerated() {
                let position = Float(rank) / Float(max(1, 4 * options.targetEdges))
                logAlpha[e] = options.initialLogAlpha - 2 * min(position, 3)
            }
        }
        state = State(options: options, step: 0, logAlpha: logAlpha, adamFirst: [Float](repeating: 0, count: edges),
                      adamSecond: [Float](repeating: 0, count: edges), seconds: 0, graphEdges: edges,
                      startEdges: Self.expectedOpen(logAlpha), run: identity)
    }

    /// `σ(log a − β·log(−l/r))`: the probability that a gate is open (z > 0).
    static func openProbability(_ logAlpha: Float) -> Float {
        sigmoid(logAlpha - beta * log(-lower / upper))
    }

    /// The score of every edge, higher kept first: its gate's log a, shifted so the lowest is 1 (σ(log a)
    /// would order the same but rounds to exactly 1 in Float above log a ≈ 17, tying the most open gates).
    public var gateScores: [Float] {
        let lowest = state.logAlpha.min() ?? 0
        return state.logAlpha.map { $0 - lowest + 1 }
    }

    /// Expected open gates.
    public var expectedEdges: Double { Self.expectedOpen(state.logAlpha) }

    /// Expected open gates for gate parameters `logAlpha`, each moved by `shift`.
    static func expectedOpen(_ logAlpha: [Float], shift: Float = 0) -> Double {
        logAlpha.reduce(0.0) { $0 + Double(openProbability($1 + shift)) }
    }

    /// The sparsity target at `step`: the expected open gates at step 0, falling linearly to
    /// `targetEdges` by the end of the warm-up.
    func target(at step: Int) -> Double {
        let o = state.options
        let warmupSteps = max(1, Int((Double(o.steps) * o.warmup).rounded()))
        let done = min(1, Double(step) / Double(warmupSteps))
        return state.startEdges + (Double(o.targetEdges) - state.startEdges) * done
    }

    /// The gates of step `step` for gate parameters `logAlpha`: coefficients α = 1 − z and ∂z/∂log a,
    /// from noise that depends only on the seed and the step.
    func sampleGates(step: Int, logAlpha: [Float]) -> (alpha: [Float], dz: [Float]) {
        var rng = SeededRandom(seed: state.options.seed &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15)
        let (l, r, beta) = (Self.lower, Self.upper, Self.beta)
        var alpha = [Float](repeating: 0, count: logAlpha.count), dz = alpha
        for e in alpha.indices {
            let u = Float(Double(rng.next() >> 40) * 0x1p-24).clamped(1e-6, 1 - 1e-6)
            let s = Self.sigmoid((log(u) - log(1 - u) + logAlpha[e]) / beta)
            let stretched = s * (r - l) + l
            alpha[e] = 1 - stretched.clamped(0, 1)
            dz[e] = stretched > 0 && stretched < 1 ? (r - l) * s * (1 - s) / beta : 0
        }
        return (alpha, dz)
    }

    /// The chunks of pairs step `step` runs: `pairsPerStep` pairs' worth, continuing where the step
    /// before stopped (nil: every chunk).
    public func chunks(step: Int) -> [Int]? {
        let count = gradient.chunkCount
        guard let perStep = state.options.pairsPerStep else { return nil }
        let taken = (perStep + state.options.chunkSize - 1) / state.options.chunkSize
        guard taken < count else { return nil }
        return (0..<taken).map { (step * taken + $0) % count }
    }

    /// The loss (`Options.loss`) under the gates sampled at `step` from `logAlpha` (default: the current
    /// gates) on that step's pairs, and its gradient with respect to every log a.
    public func lossGradient(step: Int, logAlpha: [Float]? = nil) throws -> (loss: Double, logAlpha: [Float]) {
        let (alpha, dz) = sampleGates(step: step, logAlpha: logAlpha ?? state.logAlpha)
        let pairs = chunks(step: step)
        // Gates clamped shut or open (∂z/∂log a = 0) need no ∂M/∂α: past the warm-up, nearly all of them.
        let g = try gradient.gradient(EdgeMask(alpha: alpha), chunks: pairs, wanted: dz.map { $0 != 0 })
        // ∂L/∂M: 1 for KL (the loss is the metric); 2 (M − M_clean) for the squared gap.
        var loss = g.metric, dLoss: Float = 1
        if state.options.loss != .kl {
            let gap = g.metric - (try gradient.cleanMetric(chunks: pairs))
            loss = gap * gap
            dLoss = Float(2 * gap)
        }
        // ∂L/∂log a = ∂L/∂M · ∂M/∂α · ∂α/∂z · ∂z/∂log a, with ∂α/∂z = −1.
        return (loss, zip(g.edges, dz).map { -dLoss * $0 * $1 })
    }

    /// Trains until `options.steps`, reporting after every step and offering the state to save.
    ///
    /// - Returns: `gateScores`
    public func run(progress: ((Progress) -> Void)? = nil, checkpoint: ((State) -> Void)? = nil) throws -> [Float] {
        let o = state.options, edges = state.graphEdges
        let (b1, b2, eps): (Float, Float, Float) = (0.9, 0.999, 1e-8)
        while state.step < o.steps {
            let start = Date()
            let (loss, lossGradient) = try lossGradient(step: state.step)
            let expected = expectedEdges
            state.step += 1
            let t = Float(state.step)
            let correction1 = 1 - pow(b1, t), correction2 = 1 - pow(b2, t)
            for e in 0..<edges {
                let grad = lossGradient[e]
                state.adamFirst[e] = b1 * state.adamFirst[e] + (1 - b1) * grad
                state.adamSecond[e] = b2 * state.adamSecond[e] + (1 - b2) * grad * grad
                let m = state.adamFirst[e] / correction1, v = state.adamSecond[e] / correction2
                state.logAlpha[e] -= o.learningRate * m / (v.squareRoot() + eps)
            }
            let target = target(at: state.step)
            project(to: target)
            state.seconds += Date().timeIntervalSince(start)
            progress?(Progress(step: state.step, steps: o.steps, loss: loss, expectedEdges: expected, target: target, seconds: state.seconds))
            checkpoint?(state)
        }
        return gateScores
    }

    /// Moves every log a by the same amount so that the expected open gates are `target` (to within
    /// Float rounding): the largest shift in [−100, 100] whose count does not exceed it, by bisection.
    public func project(to target: Double) {
        var low: Float = -100, high: Float = 100
        for _ in 0..<40 where high - low > 1e-6 {
            let middle = (low + high) / 2
            if Self.expectedOpen(state.logAlpha, shift: middle) > target { high = middle } else { low = middle }
        }
        for e in state.logAlpha.indices { state.logAlpha[e] += low }
    }

    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }
}

extension Float {
    /// The value limited to `lo ... hi`.
    func clamped(_ lo: Float, _ hi: Float) -> Float { Swift.min(hi, Swift.max(lo, self)) }
}

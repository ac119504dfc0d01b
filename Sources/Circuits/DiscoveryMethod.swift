import Foundation
import Transformer

/// What a run tells the user as it goes (the command line prints it on stderr).
public enum ProgressMessage: Sendable, Equatable {
    /// A line to keep: a stage begun or finished, a warning.
    case note(String)
    /// How far a long step has come; the step's next line replaces it (on a terminal, in place), and
    /// `final` marks its last line.
    case step(String, final: Bool)
}

/// Receives a run's progress messages.
public typealias ProgressNote = (ProgressMessage) -> Void

/// A long step's clock: time spent and, from the share of the work done, time left, in words.
public struct ProgressClock: Sendable {
    public let start: Date

    /// A clock started now (or at `start`).
    public init(start: Date = Date()) { self.start = start }

    /// Seconds since the start.
    public var seconds: Double { Date().timeIntervalSince(start) }

    /// `12.5 edges/s, 40 s, about 2 min 5 s left` after `done` of `total` units since the start
    /// (the rate only with a `unit`).
    public func pace(_ done: Double, of total: Double, unit: String? = nil) -> String {
        Self.pace(done, of: total, unit: unit, seconds: seconds)
    }

    /// The same for `done` of `total` units that took `spent` seconds (for work timed elsewhere,
    /// resumed runs included); the rate and estimate need some work done.
    public static func pace(_ done: Double, of total: Double, unit: String? = nil, seconds spent: Double) -> String {
        var parts: [String] = []
        if let unit, done > 0, spent > 0 {
            let rate = done / spent
            parts.append(String(format: rate >= 100 ? "%.0f %@/s" : rate >= 10 ? "%.1f %@/s" : "%.2f %@/s", rate, unit))
        }
        parts.append(words(spent))
        if done > 0, done < total { parts.append("about \(words(spent / done * (total - done))) left") }
        return parts.joined(separator: ", ")
    }

    /// A duration in words: `12 s`, `3 min 4 s`, `2 h 5 min`.
    private static func words(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \((s % 3600) / 60) min"
    }
}

/// What every discovery method shares: the model, the prompt pairs, the metric and the ablation,
/// and the patching experiment over all pairs, built on first use and then shared by scoring,
/// selection and evaluation.
public final class DiscoverySetup {
    public let model: TransformerModel
    public let pairs: PairBatch
    /// Task name or data file the pairs came from, for records.
    public let source: String
    public let metric: Metric
    public let ablation: Ablation
    private var cached: Experiment?
    /// Told when the experiment is built and how long it took.
    private let progress: ProgressNote?

    /// A setup; nothing runs until a method or the evaluation asks for the experiment.
    public init(model: TransformerModel, pairs: PairBatch, source: String, metric: Metric, ablation: Ablation = .resample,
                progress: ProgressNote? = nil) {
        self.model = model
        self.pairs = pairs
        self.source = source
        self.metric = metric
        self.ablation = ablation
        self.progress = progress
    }

    /// The clean and corrupted runs of every pair and the metric's baselines, built once.
    public func experiment() throws -> Experiment {
        if let cached { return cached }
        let start = Date()
        let built = try Experiment(model: model, pairs: pairs, metric: metric, ablation: ablation)
        progress?(.note(String(format: "clean and corrupted runs in %.1f s: clean %@ %.4f, corrupt %.4f", Date().timeIntervalSince(start),
                               metric.rawValue, built.cleanMetric, built.corruptMetric)))
        cached = built
        return built
    }

    /// Runs `body` (a method's EAP pass over chunks of `chunkSize` pairs) with a sink for its clean and
    /// corrupted runs when the experiment is not built yet and their engines fit in the memory
    /// budget; the experiment is then made of them instead of running the prompts again.
    public func sharingRuns<T>(chunkSize: Int, _ body: (EdgeAttribution.ShareRuns?) throws -> T) throws -> T {
        guard cached == nil, Experiment.fits(model: model, pairs: pairs, chunkSize: chunkSize) else { return try body(nil) }
        var engines: [(Range<Int>, PatchingEngine)] = []
        let result = try body { engines.append(($0, $1)) }
        let built = try Experiment(model: model, pairs: pairs, metric: metric, ablation: ablation, engines: engines)
        progress?(.note(String(format: "clean and corrupted runs shared with the method: clean %@ %.4f, corrupt %.4f", metric.rawValue,
                               built.cleanMetric, built.corruptMetric)))
        cached = built
        return result
    }
}

/// What a method gives: a score for every edge (a circuit is then selected from them), or a
/// circuit it chose itself with a score for each of its edges.
public enum MethodOutput {
    /// `[edges]` scores in `CircuitGraph` edge order: the estimated change of the metric when the
    /// edge is corrupted.
    case scores([Float])
    /// Edges the method kept (before pruning), each with the score it measured, and how they were chosen.
    case circuit(edges: [Int], scores: [Int: Float], selection: String)
}

/// A circuit-discovery method (design §6): exact patching, EAP, EAP-IG, ACDC, and those to come.
public protocol DiscoveryMethod {
    /// Command-line and record name: `exact`, `eap`, `eap-ig`, `acdc`.
    var name: String { get }
    /// Its options in words for reports (`5 steps`), or empty.
    var details: String { get }
    /// Whether its scores estimate the change of the metric when an edge is corrupted (signed, as
    /// design §6 defines them), rather than only ranking edges to keep (higher first).
    var scoresAreSigned: Bool { get }
    /// Scores the setup's edges or chooses a circuit.
    func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput
}

extension DiscoveryMethod {
    public var scoresAreSigned: Bool { true }
}

/// EAP (`steps` nil) or EAP-IG: gradient attribution at α = 0, pairs in chunks.
public struct EAPMethod: DiscoveryMethod {
    /// EAP-IG's interpolation points, or nil for EAP.
    public var steps: Int?
    /// Pairs per forward/backward chunk.
    public var chunkSize: Int

    /// EAP (`steps` nil) or EAP-IG with `steps` points.
    public init(steps: Int? = nil, chunkSize: Int = 32) {
        self.steps = steps
        self.chunkSize = chunkSize
    }

    public var name: String { steps == nil ? "eap" : "eap-ig" }
    public var details: String { steps.map { "\($0) steps" } ?? "" }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        .scores(try scores(setup, progress: progress))
    }

    /// Every edge's score, for methods that start from EAP or EAP-IG.
    public func scores(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> [Float] {
        if steps == nil && setup.metric == .kl {
            progress?(.note("warning: at α = 0 the gradient of kl is zero, so EAP scores every edge 0; use eap-ig for kl"))
        }
        let clock = ProgressClock()
        return try setup.sharingRuns(chunkSize: chunkSize) { share in
            try EdgeAttribution.scores(
                model: setup.model, pairs: setup.pairs, metric: setup.metric, ablation: setup.ablation,
                integratedGradientSteps: steps, chunkSize: chunkSize, shareRuns: share
            ) { done, total in
                progress?(.step("\(name): \(done)/\(total) chunks of pairs, " + clock.pace(Double(done), of: Double(total)),
                                final: done == total))
            }
        }
    }
}

/// Exact activation patching: one patched forward pass per edge.
public struct ExactMethod: DiscoveryMethod {
    /// Edges to patch (dense indices), or nil for every edge; the others score 0.
    public var edges: [Int]?

    /// Exact patching of `edges` (nil: all).
    public init(edges: [Int]? = nil) { self.edges = edges }

    public var name: String { "exact" }
    public var details: String { edges.map { "\($0.count) edges" } ?? "" }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        let experiment = try setup.experiment()
        let chosen = edges ?? Array(0..<experiment.graph.edgeCount)
        progress?(.note("exact patching: one forward pass per edge, \(chosen.count) edges"))
        let clock = ProgressClock()
        let measured = ExactPatching.scores(experiment, edges: chosen) { done, total in
            progress?(.step("exact: \(done)/\(total) edges, " + clock.pace(Double(done), of: Double(total), unit: "edges"), final: done == total))
        }
        var scores = [Float](repeating: 0, count: experiment.graph.edgeCount)
        for (e, score) in zip(chosen, measured) { scores[e] = score }
        return .scores(scores)
    }
}

/// ACDC: greedy removal from the full graph with threshold τ, resumable.
///
/// The defaults are the variant that keeps the behaviour (Benchmarks/results/acdc-ioi.md): each
/// trial compared with the clean model, τ set so that the circuit keeps faithfulness 0.9 on its
/// pairs, heads and MLPs tried whole first, edges decided by the gradient at the current graph.
/// ACDC as published is `reference: .current, trials: .serial, nodesFirst: false` with a τ.
public struct ACDCMethod: DiscoveryMethod {
    /// How τ is set.
    public enum Threshold: Sendable, Equatable {
        /// τ as given, in the metric's units.
        case tau(Double)
        /// τ = (1 − f)·|M_clean − M_corrupt|: with the clean reference the circuit's faithfulness on
        /// its pairs stays within 1 ± (1 − f) (for `kl`: KL to the clean model below 1 − f of the
        /// corrupted run's); with the current reference each removal may cost that much.
        case faithfulness(Double)

        /// τ for an experiment whose clean and corrupted runs measure `clean` and `corrupt`.
        public func tau(clean: Double, corrupt: Double) -> Double {
            switch self {
            case .tau(let tau): tau
            case .faithfulness(let f): (1 - f) * abs(clean - corrupt)
            }
        }
    }

    /// The faithfulness τ keeps by default (`Threshold.faithfulness`).
    public static let defaultFaithfulness = 0.9

    public var threshold: Threshold
    /// What each trial is compared with.
    public var reference: ACDC.Reference
    /// How edges are tried; grouped trials are ordered by EAP-IG scores (`orderSteps` steps),
    /// attributed trials by the gradient at the current graph.
    public var trials: ACDC.Trials
    /// EAP-IG steps of the scores that order grouped trials.
    public var orderSteps: Int
    /// Whether heads and MLPs are tried whole before their edges.
    public var nodesFirst: Bool
    /// A saved state to continue from (its τ, reference and trials replace `threshold`, `reference` and `trials`).
    public var resume: ACDC.State?
    /// Called after every receiver with the state to save and the progress.
    public var checkpoint: ((ACDC.State, ACDC.Progress) -> Void)?

    /// ACDC with `threshold`, comparing trials with `reference`, trying edges as `trials` says.
    public init(threshold: Threshold = .faithfulness(defaultFaithfulness), reference: ACDC.Reference = .clean, trials: ACDC.Trials = .attributed,
                orderSteps: Int = 5, nodesFirst: Bool = true, resume: ACDC.State? = nil,
                checkpoint: ((ACDC.State, ACDC.Progress) -> Void)? = nil) {
        self.threshold = threshold
        self.reference = reference
        self.trials = trials
        self.orderSteps = orderSteps
        self.nodesFirst = nodesFirst
        self.resume = resume
        self.checkpoint = checkpoint
    }

    public var name: String { "acdc" }
    public var details: String {
        let trials = resume?.trials ?? trials
        let tau = resume.map { "τ \($0.tau)" } ?? {
            switch threshold {
            case .tau(let tau): "τ \(tau)"
            case .faithfulness(let f): "τ from faithfulness \(f)"
            }
        }()
        return "\(tau), compared with the \((resume?.reference ?? reference).rawValue) graph, \(trials.rawValue) trials"
            + (trials == .grouped ? " ordered by EAP-IG (\(orderSteps) steps)" : trials == .attributed ? " (gradient at the current graph per layer)" : "")
            + (resume?.nodesFirst ?? nodesFirst ? ", nodes first" : "")
    }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        // The ordering scores are computed again on resume: the same pairs give the same scores.
        let trials = resume?.trials ?? trials
        let order = trials == .grouped ? try EAPMethod(steps: orderSteps).scores(setup, progress: progress) : nil
        let experiment = try setup.experiment()
        let tau = threshold.tau(clean: experiment.cleanMetric, corrupt: experiment.corruptMetric)
        if resume == nil, case .faithfulness(let f) = threshold {
            progress?(.note(String(format: "acdc: τ = %.4g = (1 − %g)·|M_clean − M_corrupt|", tau, f)))
        }
        let acdc = try ACDC(experiment, tau: tau, reference: reference, trials: trials, order: order,
                            nodesFirst: resume?.nodesFirst ?? nodesFirst, resume: resume)
        let graph = acdc.experiment.graph
        // Receivers are done from the end, and a trial at receiver r runs the layers from r's up: the time left
        // is estimated from the layers the receivers still to do run (receiver r counts layers + 1 − its layer),
        // at the pace of the edge trials alone (node trials before them go at another). No estimate after `logits`
        // alone: its visit takes a gradient that the receivers of each later layer share.
        var workAfter = [Double](repeating: 0, count: graph.receivers.count + 1)  // from each receiver to the end
        for r in graph.receivers.indices.reversed() {
            workAfter[r] = workAfter[r + 1] + Double(graph.layers + 1 - min(graph.receivers[r].layer, graph.layers))
        }
        let kept = acdc.run { state, step in
            if step.receiversDone == 0 {
                progress?(.step("acdc: \(step.nodesDone)/\(step.nodeCount) nodes, \(state.removedNodes.count) removed, \(state.evaluations) passes, "
                                + ProgressClock.pace(Double(step.nodesDone), of: Double(step.nodeCount), seconds: step.seconds), final: false))
                checkpoint?(state, step)
                return
            }
            progress?(.step("acdc: \(step.receiversDone)/\(step.receiverCount) receivers (\(step.receiver.name) done), "
                            + "\(step.edgesTried) edges tried, \(step.edgesTried - step.edgesRemoved) kept, \(state.evaluations) passes\(state.gradients > 0 ? ", \(state.gradients) gradients" : ""), "
                            + ProgressClock.pace(step.receiversDone > 1 ? workAfter[step.receiverCount - step.receiversDone] : 0, of: workAfter[0],
                                              seconds: step.seconds - step.nodeSeconds),
                            final: step.receiversDone == step.receiverCount))
            checkpoint?(state, step)
        }
        let state = acdc.state
        return .circuit(edges: kept, scores: state.keptEffects,
                        selection: "acdc tau \(state.tau), \(state.reference.rawValue) reference, \(state.trials.rawValue) trials\(state.nodesFirst ? ", \(state.removedNodes.count) nodes removed first" : ""), \(state.evaluations) passes\(state.gradients > 0 ? ", \(state.gradients) gradients" : "")")
    }
}

/// Learned edge masks (Edge Pruning): trains one gate per edge; an edge's score ranks its gate
/// (`EdgePruning.gateScores`), so selection keeps the most open gates.
public struct PruneMethod: DiscoveryMethod {
    public var scoresAreSigned: Bool { false }
    public var options: EdgePruning.Options
    /// EAP-IG steps for a warm start of the gates, or nil to start them all equal.
    public var warmStartSteps: Int?
    /// A saved state to continue from (its options replace `options`).
    public var resume: EdgePruning.State?
    /// Called after every step with the state to save.
    public var checkpoint: ((EdgePruning.State) -> Void)?
    /// Steps between progress lines (each also measures the faithfulness of the current top circuit).
    public var reportEvery: Int

    /// Edge pruning with `options`.
    public init(options: EdgePruning.Options, warmStartSteps: Int? = nil, resume: EdgePruning.State? = nil,
                checkpoint: ((EdgePruning.State) -> Void)? = nil, reportEvery: Int = 10) {
        self.options = options
        self.warmStartSteps = warmStartSteps
        self.resume = resume
        self.checkpoint = checkpoint
        self.reportEvery = max(1, reportEvery)
    }

    public var name: String { "prune" }
    public var details: String {
        let o = resume?.options ?? options
        return "\(o.steps) steps\(o.pairsPerStep.map { " of \($0) pairs" } ?? "")\(o.loss == .kl ? "" : " on the \(o.loss.rawValue) gap"), target \(o.targetEdges) edges, seed \(o.seed)"
            + (warmStartSteps == nil ? "" : ", EAP-IG warm start")
    }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        let warmStart = try resume == nil ? warmStartSteps.map { steps in
            progress?(.note("prune: warm start from EAP-IG (\(steps) steps)"))
            return try EdgeAttribution.scores(model: setup.model, pairs: setup.pairs, metric: setup.metric, ablation: setup.ablation,
                                              integratedGradientSteps: steps, chunkSize: options.chunkSize)
        } : nil
        let pruning = try EdgePruning(model: setup.model, pairs: setup.pairs, ablation: setup.ablation, options: options,
                                      warmStart: warmStart, resume: resume)
        // The steps' chunks first: the experiment, which measures progress every `reportEvery` steps, gets
        // the memory left.
        try pruning.gradient.cacheChunks()
        let (kept, chunks) = (pruning.gradient.cachedChunkCount, pruning.gradient.chunkCount)
        if kept < chunks {
            progress?(.note("prune: \(kept) of \(chunks) chunks fit in the cache budget (CIRCUITKIT_CACHE_GB); the others are run again at each step that uses them"))
        }
        let experiment = try setup.experiment()
        let graph = experiment.graph, target = pruning.state.options.targetEdges
        let lossName = pruning.state.options.loss == .kl ? "kl" : "(\(pruning.state.options.loss.rawValue) gap)²"
        let scores = try pruning.run(progress: { step in
            guard step.step % reportEvery == 0 || step.step == step.steps else { return }
            let circuit = graph.pruned(Selection.topN(target).select(pruning.gateScores, graph: graph))
            let faithfulness = experiment.evaluate(circuit: circuit).faithfulness
            progress?(.step(String(format: "prune: step %d/%d, %@ %.4f, expected edges %.0f (target %.0f), top %d: %d edges at faithfulness %.3f, ",
                                   step.step, step.steps, lossName, step.loss, step.expectedEdges, step.target, target, circuit.count, faithfulness)
                            + ProgressClock.pace(Double(step.step), of: Double(step.steps), seconds: step.seconds), final: step.step == step.steps))
        }, checkpoint: checkpoint)
        return .scores(scores)
    }
}

/// EAP-IG, then exact patching of its top candidates: exact scores for the `candidates` edges EAP-IG
/// ranks highest by |score|, 0 for the rest, so selection re-ranks the candidates exactly.
public struct RerankMethod: DiscoveryMethod {
    /// EAP-IG's scoring.
    public var attribution: EAPMethod
    /// How many of its top edges exact patching scores.
    public var candidates: Int

    /// EAP-IG with `steps` steps, then exact patching of its top `candidates`.
    public init(steps: Int = 5, chunkSize: Int = 32, candidates: Int) {
        attribution = EAPMethod(steps: steps, chunkSize: chunkSize)
        self.candidates = candidates
    }

    public var name: String { "eap-ig-exact" }
    public var details: String { "\(attribution.details), exact patching of the top \(candidates)" }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        let approximate = try attribution.scores(setup, progress: progress)
        return try ExactMethod(edges: Array(Selection.ranked(approximate).prefix(candidates))).run(setup, progress: progress)
    }
}

/// EAP-IG's top n, improved by a gradient-guided search over circuits of that size (`CircuitSearch`).
///
/// It chooses its circuit itself; each edge's score is ∂M/∂α at the found circuit, the estimated
/// change of the metric if that edge alone were corrupted as well. The search stops early once
/// faithfulness is within 0.001 of 1 (for `kl`, once KL < 0.001).
public struct SearchMethod: DiscoveryMethod {
    /// EAP-IG's scoring, where the search starts.
    public var attribution: EAPMethod
    public var options: CircuitSearch.Options

    /// EAP-IG with `steps` points, then a search with `options`.
    public init(steps: Int = 5, options: CircuitSearch.Options) {
        attribution = EAPMethod(steps: steps, chunkSize: options.chunkSize)
        self.options = options
    }

    public var name: String { "search" }
    public var details: String { "from EAP-IG (\(attribution.details)), \(options.steps) search steps at \(options.edges) edges" }

    public func run(_ setup: DiscoverySetup, progress: ProgressNote?) throws -> MethodOutput {
        let start = try attribution.scores(setup, progress: progress)
        let experiment = try setup.experiment()
        var options = options
        // Done once faithfulness is within 0.001 of 1 (KL: below 0.001).
        options.tolerance = setup.metric == .kl ? 1e-3 : 1e-3 * abs(experiment.cleanMetric - experiment.corruptMetric)
        let search = try CircuitSearch(model: setup.model, pairs: setup.pairs, metric: setup.metric, cleanMetric: experiment.cleanMetric,
                                       ablation: setup.ablation, options: options)
        let found = try search.run(start: start) { step in
            progress?(.step(String(format: "search: step %d/%d, faithfulness %.4f (best %.4f)%@, next %d moves, ",
                                   step.step, step.steps, experiment.faithfulness(of: step.metric), experiment.faithfulness(of: step.bestMetric),
                                   step.improved ? "" : ", undone", step.moves)
                            + ProgressClock.pace(Double(step.step + 1), of: Double(step.steps + 1), seconds: step.seconds), final: step.step == step.steps))
        }
        return .circuit(edges: found.edges, scores: Dictionary(uniqueKeysWithValues: found.edges.map { ($0, found.gradient[$0]) }),
                        selection: "search at \(options.edges) edges")
    }
}

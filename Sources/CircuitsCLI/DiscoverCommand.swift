import Circuits
import Foundation
import Tasks
import Transformer

/// `circuits discover`: scores edges with a method, selects a circuit, measures it and writes DOT/SVG/JSON.
enum DiscoverCommand: Subcommand {
    static let name = "discover"
    static let summary = "Find the circuit behind a task: score edges, select and prune a circuit, measure its faithfulness, write DOT, SVG and JSON."
    static let usage = "[--model M] [--task T | --data F] [--method search] [--metric M] [--edges N | --target-faithfulness F | --level node --nodes N] [--out DIR]"
    static let options = [
        OptionSpec(name: "model", value: "M", help: "model: .gguf file, HF directory, HF cache name, or \(DefaultModel.name) (default)"),
    ] + pairOptions + [
        OptionSpec(name: "method", value: "NAME", help: "search (default: EAP-IG's top --edges, then gradient-guided edge swaps at the circuit; eap-ig with --level node or when --threshold, --target-faithfulness or --greedy is given), eap-ig, eap, exact, eap-ig-exact (EAP-IG, then exact patching of its top --candidates), acdc, or prune (learned edge masks)"),
        OptionSpec(name: "edges-from", value: "SOURCE", help: "exact: patch only these edges: a circuit JSON file or comma-separated edge names"),
        OptionSpec(name: "candidates", value: "K", help: "eap-ig-exact: EAP-IG's top K edges to patch exactly (default 500)"),
        OptionSpec(name: "steps", value: "M", help: "EAP-IG interpolation steps (default 5)"),
        OptionSpec(name: "metric", value: "NAME", help: "logit_diff, prob_diff, kl or logprob (default: the task's)"),
        OptionSpec(name: "ablation", value: "KIND", help: "resample (default), mean or zero"),
        OptionSpec(name: "level", value: "LEVEL", help: "edge (default): score and choose edges; node: score the heads and MLPs (eap, eap-ig: the sum of a node's outgoing edge scores; exact: node patching), keep the top --nodes and the edges among them"),
        OptionSpec(name: "nodes", value: "N", help: "--level node: keep the top N heads and MLPs by |score| (default 20)"),
        OptionSpec(name: "edges", value: "N", help: "keep the top N edges by |score| (default 200)"),
        OptionSpec(name: "greedy", value: nil, help: "grow the N edges greedily from logits instead of taking the global top N"),
        OptionSpec(name: "threshold", value: "T", help: "keep every edge (--level node: every head and MLP) with |score| ≥ T"),
        OptionSpec(name: "target-faithfulness", value: "F", help: "smallest top-n circuit with faithfulness ≥ F (bisection); acdc: τ = (1 − F)·|M_clean − M_corrupt| (default 0.9), so that with --compare clean the circuit keeps faithfulness ≥ F on its pairs"),
        OptionSpec(name: "tau", value: "τ", help: "acdc: the threshold in the metric's units, instead of one from --target-faithfulness"),
        OptionSpec(name: "compare", value: "WITH", help: "acdc: compare each trial with the clean model (default: τ bounds the whole circuit's drift) or the current graph (as published: each removal may cost τ and the losses add up)"),
        OptionSpec(name: "trials", value: "HOW", help: "acdc: serial (one edge at a time, as published) or grouped (each receiver's edges in groups, least important first by EAP-IG, the longest removable prefix found by a galloping search: one pass for a receiver whose edges can all go) or attributed (default: the gradient at the current graph, per layer, keeps the edges it predicts to fail the τ test; the others go in groups)"),
        OptionSpec(name: "nodes-first", value: nil, help: "acdc (default): try each head and MLP whole (all its outgoing edges at once, from the last layer) before the edges, which are then tried among the nodes that remain"),
        OptionSpec(name: "edges-only", value: nil, help: "acdc: try edges only, as published, not heads and MLPs whole first"),
        OptionSpec(name: "resume", value: "STATE", help: "resume ACDC or prune from a state file it saved (ACDC saves every few seconds and at the end, prune every 10 steps)"),
        OptionSpec(name: "search-steps", value: "N", help: "search: masked forward and backward passes after the first (default 25)"),
        OptionSpec(name: "train-steps", value: "N", help: "prune: optimizer steps (default 100)"),
        OptionSpec(name: "learning-rate", value: "LR", help: "prune: Adam step size for the gates (default 0.1)"),
        OptionSpec(name: "mask-seed", value: "S", help: "prune: seed of the gate noise (default 0)"),
        OptionSpec(name: "loss", value: "L", help: "prune: what the gates are trained to keep: kl (default, KL(p_clean ‖ p_circuit)) or metric (the squared gap between the circuit's --metric and the clean model's, over each step's pairs)"),
        OptionSpec(name: "pairs-per-step", value: "N", help: "prune: pairs each step trains on, in whole chunks of --chunk-size taken in turn (default 32)"),
        OptionSpec(name: "warm-start", value: nil, help: "prune: start the gates from EAP-IG scores (--steps steps)"),
        OptionSpec(name: "curve", value: nil, help: "also print the faithfulness curve (50 … 2000 edges)"),
        OptionSpec(name: "mib", value: nil, help: "also print MIB's CPR and CMD (faithfulness at 0.1 % … 100 % of the edges) on the pairs and the fresh pairs"),
        OptionSpec(name: "mib-out", value: "DIR", help: "also write MIB's submission forms: DIR/scores/NAME.json (every edge's score) and DIR/circuits/NAME-<k>pct.json (one circuit per budget, 0.1 % … 50 %)"),
        OptionSpec(name: "scores-out", value: "FILE", help: "eap, eap-ig, exact, eap-ig-exact: also write every edge's score, in the graph's edge order, as .npy, .npz, .csv or .json (EAP-IG's graph JSON)"),
        OptionSpec(name: "shard", value: "I/N", help: "eap, eap-ig, exact: compute part I of N (pairs for eap/eap-ig, edges for exact) and write OUT/NAME.shard-I-of-N.json for `circuits merge`; the selection options apply at the merge"),
        OptionSpec(name: "chunk-size", value: "N", help: "pairs per forward/backward chunk for eap/eap-ig (default 32)"),
        OptionSpec(name: "out", value: "DIR", help: "output folder (default Graphs; with --json, files are written only when --out or --name is given)"),
        OptionSpec(name: "report", value: nil, help: "also write NAME.html: the circuit as a self-contained page with each node's direct logit attribution, edges and attention patterns (circuits report)"),
        OptionSpec(name: "compact", value: nil, help: "draw one edge per sender and head for the head's q, k and v inputs"),
        OptionSpec(name: "render-timeout", value: "S", help: "seconds Graphviz may take to draw the SVG (default 10; 0: no SVG)"),
        OptionSpec(name: "name", value: "NAME", help: "output file name without extension (default: the task name)"),
        OptionSpec(name: "top", value: "K", help: "edges and nodes to list (default 15)"),
        OptionSpec(name: "json", value: nil, help: "print the circuit JSON on stdout instead of the text report"),
    ]

    static func run(_ options: ParsedOptions) throws -> Int32 { try run(options, merged: nil) }

    /// Runs discover; with `merged`, the scores of a sharded run take the place of the method's.
    static func run(_ options: ParsedOptions, merged: MergedScores?) throws -> Int32 {
        guard options.positionals.isEmpty else { throw UsageError(description: "unexpected argument '\(options.positionals[0])'") }
        /// The state file given with --resume, decoded as `type`.
        func resumeState<State: Decodable>(_ type: State.Type, _ what: String) throws -> State? {
            try options.string("resume").map { path in
                let data = try readInputFile(URL(fileURLWithPath: path), as: "\(what) state file")
                do { return try JSONDecoder().decode(State.self, from: data) } catch {
                    throw ModelFileError(path, "not an \(what) state file")
                }
            }
        }
        let level = options.string("level") ?? "edge"
        guard ["edge", "node"].contains(level) else { throw UsageError(description: "--level must be edge or node, got '\(level)'") }
        let nodeLevel = level == "node"
        // search looks for a circuit of a given size; the other selections, and nodes, need scores to rank.
        let methodName = options.string("method")
            ?? (nodeLevel || ["threshold", "target-faithfulness"].contains { options.string($0) != nil } || options.flag("greedy") ? "eap-ig" : "search")
        if nodeLevel {
            guard ["eap", "eap-ig", "exact"].contains(methodName) else {
                throw UsageError(description: "--level node scores nodes with eap, eap-ig or exact (node patching); \(methodName) chooses edges")
            }
            if let edgeOption = ["edges", "target-faithfulness", "edges-from", "scores-out", "mib-out", "shard"].first(where: { options.string($0) != nil })
                ?? ["greedy", "curve", "mib"].first(where: { options.flag($0) }) {
                throw UsageError(description: "--\(edgeOption) ranks or lists edges; with --level node choose nodes with --nodes or --threshold")
            }
        } else if options.string("nodes") != nil {
            throw UsageError(description: "--nodes only applies with --level node")
        }
        let nodesWanted = try options.int("nodes", default: 20, in: 1...Int.max)!
        let steps = try options.int("steps", default: 5, in: 1...1000)!
        let tau = try options.double("tau", in: 0...Double.infinity)
        // ACDC's threshold from the faithfulness its circuit keeps (τ = (1 − F)·|M_clean − M_corrupt|).
        let acdcFaithfulness = methodName == "acdc" ? try options.double("target-faithfulness", in: 0...0.9999) : nil
        let chunkSize = try options.int("chunk-size", default: 32, in: 1...100_000)!
        let top = try options.int("top", default: 15, in: 0...100_000)!
        let renderTimeout = try options.double("render-timeout", default: 10, in: 0...86_400)!
        let selectionChoices = ["edges", "threshold", "target-faithfulness"].filter { options.string($0) != nil }
        guard selectionChoices.count <= 1 else { throw UsageError(description: "give only one of --edges, --threshold, --target-faithfulness") }
        if methodName == "acdc", let other = selectionChoices.first(where: { $0 != "target-faithfulness" }) {
            throw UsageError(description: "acdc chooses its circuit with --target-faithfulness or --tau; --\(other) does not apply")
        }
        if tau != nil, selectionChoices.contains("target-faithfulness") {
            throw UsageError(description: "give only one of --tau, --target-faithfulness: both set acdc's threshold")
        }
        if options.flag("nodes-first"), options.flag("edges-only") {
            throw UsageError(description: "give only one of --nodes-first, --edges-only")
        }
        if options.string("resume") != nil, !["acdc", "prune"].contains(methodName) {
            throw UsageError(description: "--resume only applies to --method acdc or prune")
        }
        let pruneOptions = ["train-steps", "learning-rate", "mask-seed", "pairs-per-step", "loss", "warm-start"].filter { options.string($0) != nil || options.flag($0) }
        if methodName != "prune", let first = pruneOptions.first { throw UsageError(description: "--\(first) only applies to --method prune") }
        if options.string("search-steps") != nil, methodName != "search" { throw UsageError(description: "--search-steps only applies to --method search") }
        if methodName == "search", let other = selectionChoices.first(where: { $0 != "edges" }) ?? (options.flag("greedy") ? "greedy" : nil) {
            throw UsageError(description: "search looks for a circuit of --edges edges; --\(other) does not apply")
        }
        if options.string("compare") != nil, methodName != "acdc" { throw UsageError(description: "--compare only applies to --method acdc") }
        let compare = options.string("compare") ?? "clean"
        guard let reference = ACDC.Reference(rawValue: compare) else {
            throw UsageError(description: "--compare must be current or clean, got '\(compare)'")
        }
        if ["acdc", "search"].contains(methodName),
           let flag = ["mib", "curve"].first(where: { options.flag($0) }) ?? (options.string("mib-out") != nil ? "mib-out" : nil) {
            throw UsageError(description: "--\(flag) ranks every edge by its score; \(methodName) chooses one circuit instead")
        }
        if let flag = ["tau", "trials"].first(where: { options.string($0) != nil }) ?? ["nodes-first", "edges-only"].first(where: { options.flag($0) }),
           methodName != "acdc" {
            throw UsageError(description: "--\(flag) only applies to --method acdc")
        }
        let trialsName = options.string("trials") ?? "attributed"
        guard let trials = ACDC.Trials(rawValue: trialsName) else {
            throw UsageError(description: "--trials must be serial, grouped or attributed, got '\(trialsName)'")
        }
        if options.flag("greedy"), methodName == "acdc" || selectionChoices.contains(where: { $0 != "edges" }) {
            throw UsageError(description: "--greedy grows a top --edges circuit; it does not combine with --\(selectionChoices.first ?? "method acdc")")
        }
        let usesSteps = ["eap-ig", "eap-ig-exact", "search"].contains(methodName) || methodName == "prune" && options.flag("warm-start")
        if options.string("steps") != nil, !usesSteps {
            throw UsageError(description: "--steps sets EAP-IG's interpolation points: it applies to eap-ig, eap-ig-exact, search and prune --warm-start")
        }
        // A resumed edge pruning run keeps the options it was started with.
        let pruneResume = methodName == "prune" ? try resumeState(EdgePruning.State.self, "edge pruning") : nil
        if pruneResume != nil, let first = (pruneOptions + ["chunk-size"]).first(where: { options.string($0) != nil || options.flag($0) }) {
            throw UsageError(description: "--\(first) does not apply with --resume: the state file's options are used")
        }
        let edgesWanted = try options.int("edges", default: pruneResume?.options.targetEdges ?? 200, in: 1...Int.max)!
        let choice: CircuitChoice
        if let target = try options.double("target-faithfulness", in: -10...10) {
            choice = .targetFaithfulness(target)
        } else if let threshold = try options.double("threshold", in: 0...Double.infinity) {
            choice = .selection(.threshold(threshold))
        } else {
            choice = .selection(options.flag("greedy") ? .greedy(edgesWanted) : .topN(edgesWanted))
        }
        let outDirectory = URL(fileURLWithPath: options.string("out") ?? "Graphs")
        if let name = options.string("name"), name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw UsageError(description: "--name must be a plain file name (no '/', no leading '.'), got '\(name)': outputs stay inside --out")
        }
        guard ["eap-ig", "eap", "exact", "eap-ig-exact", "acdc", "prune", "search"].contains(methodName) else {
            throw UsageError(description: "unknown --method '\(methodName)' (eap-ig, eap, exact, eap-ig-exact, acdc, prune, search)")
        }
        if options.string("edges-from") != nil, methodName != "exact" { throw UsageError(description: "--edges-from only applies to --method exact") }
        if options.string("candidates") != nil, methodName != "eap-ig-exact" {
            throw UsageError(description: "--candidates only applies to --method eap-ig-exact")
        }
        let candidates = try options.int("candidates", default: 500, in: 1...Int.max)!
        let shard = try shardOption(options, method: methodName)
        let scoresOut = options.string("scores-out").map { URL(fileURLWithPath: $0).standardizedFileURL }
        if let scoresOut {
            guard ["eap", "eap-ig", "exact", "eap-ig-exact"].contains(methodName) else {
                throw UsageError(description: "--scores-out writes every edge's score: use eap, eap-ig, exact or eap-ig-exact; \(methodName) chooses one circuit")
            }
            guard shard == nil else { throw UsageError(description: "--scores-out does not apply to one shard: the merged run has every edge's score") }
            guard EdgeScoresFile.Format(of: scoresOut) != nil else {
                throw UsageError(description: "--scores-out \(scoresOut.path): the extension must be .npy, .npz, .csv or .json")
            }
        }
        let loss = options.string("loss") ?? "kl"
        guard ["kl", "metric"].contains(loss) else { throw UsageError(description: "--loss must be kl or metric, got '\(loss)'") }
        var pruning = EdgePruning.Options(
            targetEdges: edgesWanted, steps: try options.int("train-steps", default: 100, in: 1...1_000_000)!,
            learningRate: Float(try options.double("learning-rate", default: 0.1, in: 1e-6...100)!),
            seed: UInt64(try options.int("mask-seed", default: 0, in: 0...Int.max)!), chunkSize: chunkSize,
            pairsPerStep: try options.int("pairs-per-step", default: 32, in: 1...Int.max))

        let model = try loadModel(options.string("model"))
        let tokenizer = try requireTokenizer(model)
        let loaded = try loadPairs(options, model: model)
        let metric = try metricOption(options, default: loaded.defaultMetric)
        let ablation = try ablationOption(options)
        if loss == "metric" { pruning.loss = metric }
        let outName = options.string("name") ?? loaded.source.replacingOccurrences(of: ".", with: "-")
        if let source = options.string("edges-from"),
           URL(fileURLWithPath: source).standardizedFileURL == outDirectory.appendingPathComponent("\(outName).json").standardizedFileURL {
            throw UsageError(description: "--edges-from \(source) is also where this run would write its circuit; give another --name or --out")
        }
        let ownFiles = OutputSet.extensions.map { outDirectory.appendingPathComponent("\(outName).\($0)") }
            + ["data", "edges-from"].compactMap { options.string($0).map(URL.init(fileURLWithPath:)) }
        if let scoresOut, ownFiles.contains(where: { $0.standardizedFileURL == scoresOut }) {
            throw UsageError(description: "--scores-out \(scoresOut.path) is one of this run's own files; give another path")
        }
        for line in loaded.notes { note(line) }
        note("\(loaded.batch.count) pairs of \(loaded.source), metric \(metric.rawValue), ablation \(ablation.rawValue)")

        let method: DiscoveryMethod
        switch merged == nil ? methodName : "merged" {
        case "merged": method = merged!
        case "eap": method = EAPMethod(steps: nil, chunkSize: chunkSize)
        case "eap-ig": method = EAPMethod(steps: steps, chunkSize: chunkSize)
        case "exact": method = ExactMethod(edges: try options.string("edges-from").map { try edgeList($0, graph: model.graph) })
        case "search":
            method = SearchMethod(steps: steps, options: CircuitSearch.Options(
                edges: edgesWanted, steps: try options.int("search-steps", default: 25, in: 0...100_000)!, chunkSize: chunkSize))
        case "eap-ig-exact": method = RerankMethod(steps: steps, chunkSize: chunkSize, candidates: candidates)
        case "prune":
            let stateURL = outDirectory.appendingPathComponent("\(outName).prune-state.json")
            try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
            method = PruneMethod(options: pruning, warmStartSteps: options.flag("warm-start") ? steps : nil,
                                 resume: pruneResume) { state in
                guard state.step % 10 == 0 || state.step == state.options.steps else { return }
                saveState(state, to: stateURL)
            }
        default:
            let stateURL = outDirectory.appendingPathComponent("\(outName).acdc-state.json")
            try FileManager.default.createDirectory(at: outDirectory, withIntermediateDirectories: true)
            let resume = try resumeState(ACDC.State.self, "ACDC")
            if resume != nil, let first = ["tau", "target-faithfulness", "compare", "trials"].first(where: { options.string($0) != nil })
                ?? ["nodes-first", "edges-only"].first(where: { options.flag($0) }) {
                throw UsageError(description: "--\(first) does not apply with --resume: the state file's are used")
            }
            // Checked here as well as by ACDC, so that the error names the state file.
            if let resume, let path = options.string("resume") {
                do {
                    try ACDC.validate(resume, graph: model.graph)
                    try resume.run.map {
                        try RunIdentity(model: model, pairs: loaded.batch, metric: metric, ablation: ablation).checkResumable(from: $0, state: "ACDC")
                    }
                } catch {
                    throw ModelFileError(path, "\(error)")
                }
            }
            let threshold = tau.map { ACDCMethod.Threshold.tau($0) } ?? .faithfulness(acdcFaithfulness ?? ACDCMethod.defaultFaithfulness)
            // The state (every decision so far: a few MB on a real model) is written at most every few seconds,
            // and at the end; an interrupted run loses at most those seconds.
            var saved = Date.distantPast
            method = ACDCMethod(threshold: threshold, reference: reference, trials: trials, nodesFirst: !options.flag("edges-only"), resume: resume) { state, step in
                guard step.receiversDone == step.receiverCount || Date().timeIntervalSince(saved) >= acdcStateInterval else { return }
                saveState(state, to: stateURL)
                saved = Date()
            }
        }
        let setup = DiscoverySetup(model: model, pairs: loaded.batch, source: loaded.source, metric: metric, ablation: ablation,
                                   progress: showProgress)
        if let shard {
            return try runShard(shard, method: method, setup: setup, arguments: options.arguments,
                                to: outDirectory.appendingPathComponent("\(outName).shard-\(shard.index)-of-\(shard.count).json"))
        }
        let heldOut = loaded.heldOut.map {
            DiscoverySetup(model: model, pairs: $0.batch, source: $0.source, metric: metric, ablation: ablation, progress: showProgress)
        }
        let result: Discovery.Result
        if nodeLevel, let scorer = method as? NodeScoringMethod {
            let rule = try options.double("threshold", in: 0...Double.infinity).map { Selection.threshold($0) } ?? .topN(nodesWanted)
            result = try Discovery.runNodes(scorer, on: setup, rule: rule, heldOut: heldOut, progress: showProgress)
        } else {
            result = try Discovery.run(method, on: setup, choice: choice,
                                       curveSizes: options.flag("curve") ? [50, 100, 200, 500, 1000, 2000] : [], heldOut: heldOut,
                                       progress: showProgress)
        }
        var circuit = result.circuit
        circuit.provenance = try runProvenance(options, method: method, loaded: loaded, metric: metric, ablation: ablation)

        // With --json the record goes to stdout; files only when a place for them is named.
        let writesFiles = !options.flag("json") || options.string("out") != nil || options.string("name") != nil
        let report = options.flag("report")
            ? try CircuitReport(model: model, circuit: circuit, pairs: loaded.batch, source: loaded.source, examples: 3) { tokenLabel(tokenizer, $0) }.html()
            : nil
        let outputs = OutputSet(directory: outDirectory, name: outName, renderTimeout: renderTimeout, compact: options.flag("compact"))
        var written = writesFiles ? try outputs.write(circuit, report: report) : []
        if let folder = options.string("mib-out"), let scores = result.scores {
            do {
                written += try MIBSubmission.write(scores: scores, signed: method.scoresAreSigned, circuit: circuit.edgeIndices(in: model.graph),
                                                   graph: model.graph, dModel: model.config.dModel, name: outName,
                                                   to: URL(fileURLWithPath: folder))
            } catch {
                throw ModelFileError(folder, "cannot write MIB files (\(error.localizedDescription))")
            }
        }
        if let scoresOut, let scores = result.scores {
            do {
                try EdgeScoresFile.write(scores, graph: model.graph, dModel: model.config.dModel, circuit: circuit.edgeIndices(in: model.graph),
                                         to: scoresOut)
            } catch {
                throw ModelFileError(scoresOut.path, "cannot write the scores (\(describeFileError(error)))")
            }
            written.append(scoresOut)
        }
        if options.flag("json") {
            FileHandle.standardOutput.write(try circuit.jsonData())
            print()
            return 0
        }
        let m = metric.rawValue
        let details = method.details.isEmpty ? "" : " (\(method.details))"
        print("model         \(describe(model))")
        print("task          \(loaded.source), \(loaded.batch.count) pairs, metric \(m), ablation \(ablation.rawValue)")
        if circuit.nodes != nil {
            let sums = result.scores.map { " (sums of \($0.count) edge scores)" } ?? ""
            print("method        \(method.name)\(details), \(model.graph.senders.count) nodes scored\(sums) in \(String(format: "%.1f", result.methodSeconds)) s")
        } else if result.scores != nil {
            print("method        \(method.name)\(details), \(circuit.graphEdges) edges scored in \(String(format: "%.1f", merged?.seconds ?? result.methodSeconds)) s")
        } else {
            print("method        \(method.name)\(details), \(String(format: "%.1f", result.methodSeconds)) s")
        }
        print(String(format: "clean %@     %.4f", m, circuit.cleanMetric))
        print(String(format: "corrupt %@   %.4f", m, circuit.corruptMetric))
        if let nodes = circuit.nodes {
            print("circuit       \(nodes.count) nodes, \(circuit.edges.count) edges among them (\(circuit.selection), pruned)")
        } else {
            print("circuit       \(circuit.edges.count) edges (\(circuit.selection), pruned)")
        }
        print(String(format: "circuit %@   %.4f", m, circuit.circuitMetric))
        print(String(format: "faithfulness  %.4f on the %d pairs it was found on", circuit.faithfulness, circuit.pairs))
        if let fresh = circuit.heldOut {
            print(String(format: "held out      %.4f on %d fresh pairs (%@; clean %.4f, corrupt %.4f, circuit %.4f)", fresh.faithfulness,
                         fresh.pairs, fresh.source, fresh.cleanMetric, fresh.corruptMetric, fresh.circuitMetric))
        }
        if let warning = faithfulnessWarning(circuit) { print(warning) }
        if options.flag("mib"), let scores = result.scores {
            for (label, run) in [("its pairs", setup)] + (heldOut.map { [("fresh pairs", $0)] } ?? []) {
                let mib = try run.experiment().mibScores(scores, signed: method.scoresAreSigned)
                print(String(format: "MIB on %@: CPR %.3f, CMD %.3f", label, mib.cpr, mib.cmd))
                for (p, q) in zip(mib.cprPoints, mib.cmdPoints) {
                    print(String(format: "  %6.1f %% (%6d edges): f %.4f signed, %.4f by |score|", 100 * p.budget, p.requested,
                                 p.faithfulness, q.faithfulness))
                }
            }
        }
        if !result.curve.isEmpty {
            print("faithfulness curve (top n → edges after pruning: faithfulness):")
            for p in result.curve { print(String(format: "  %6d → %6d: %.4f", p.requested, p.edges, p.faithfulness)) }
        }
        if top > 0 {
            if let nodes = circuit.nodes {
                print("top nodes (score: the metric's change with the node's output corrupted):")
                for (i, node) in nodes.prefix(top).enumerated() {
                    print(String(format: "  %3d. %@ %+.5f", i + 1, node.name.padding(toLength: 26, withPad: " ", startingAt: 0), node.score))
                }
            }
            if circuit.nodes != nil && result.scores == nil {
                print("edges: not scored one by one (node patching scores whole nodes; their edges are recorded with score 0)")
            } else {
                print("top edges:")
                for (i, record) in circuit.edges.prefix(top).enumerated() {
                    print(String(format: "  %3d. %@ %+.5f", i + 1, record.name.padding(toLength: 26, withPad: " ", startingAt: 0), record.score))
                }
            }
            print(NodesCommand.table(circuit.nodeSummary ?? circuit.summarizeNodes(), top: top))
        }
        if !written.isEmpty { print("wrote " + written.map(\.path).joined(separator: ", ")) }
        return 0
    }
}

/// Least seconds between two saves of ACDC's state.
let acdcStateInterval: TimeInterval = 5

/// Writes a resumable state (atomically); a failure is reported on stderr and the run goes on.
func saveState(_ state: some Encodable, to url: URL) {
    do {
        try JSONEncoder().encode(state).write(to: url, options: .atomic)
    } catch {
        note("warning: could not save the state to \(url.path) (\(error.localizedDescription)); the run goes on but cannot be resumed from here")
    }
}

/// Edge indices from `--edges-from`: a circuit JSON file's edges, or comma-separated edge names.
func edgeList(_ source: String, graph: CircuitGraph) throws -> [Int] {
    if source.hasSuffix(".json") || FileManager.default.fileExists(atPath: source) {
        return try edgeIndices(of: Circuit.load(URL(fileURLWithPath: source)), from: source, in: graph)
    }
    let names = source.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw UsageError(description: "--edges-from names no edges") }
    return try names.map { name in
        guard let edge = graph.edge(named: name), let i = graph.index(of: edge) else {
            throw UsageError(description: "--edges-from: '\(name)' is not an edge of this model (edges look like a0.h1->a3.h2<q>)")
        }
        return i
    }
}

/// The dense indices of a loaded circuit's edges in `graph`; an edge the model lacks is reported with the circuit's file.
func edgeIndices(of circuit: Circuit, from path: String, in graph: CircuitGraph) throws -> [Int] {
    do { return try circuit.edgeIndices(in: graph) } catch { throw ModelFileError(path, "\(error)") }
}

/// A warning line when a circuit explains less than half of the behaviour on its pairs or on fresh ones.
func faithfulnessWarning(_ circuit: Circuit) -> String? {
    let values = [circuit.faithfulness] + (circuit.heldOut.map { [$0.faithfulness] } ?? [])
    guard values.contains(where: { !($0 >= 0.5) }) else { return nil }
    return "warning       this circuit keeps less than half of the behaviour (faithfulness below 0.5): it does not explain it"
}

import Foundation

/// Peak memory of `circuits discover` for each method as the pairs grow, with the patching caches of
/// the whole batch kept (the default when they fit) or held to a budget (`CIRCUITKIT_CACHE_GB`).
///
/// Each configuration runs the built `circuits` executable in its own process under a small Python
/// wrapper that reports the child's peak resident memory (`getrusage`, RUSAGE_CHILDREN). Methods
/// other than EAP run a little of their work (`work`): their memory is that of one step, gradient or
/// patched pass, however many they take; a run past `--limit` seconds is stopped and its peak so far
/// reported.
enum MemoryBenchmark {
    /// Method, pairs, cache budget in GiB (nil: the default), and pairs per chunk (nil: the method has no
    /// `--chunk-size`; its patched passes run the experiment's chunks, sized by the budget).
    struct Configuration {
        let method: String
        let pairs: Int
        let budget: Double?
        let chunk: Int?
    }

    /// Methods whose forward and backward passes run `--chunk-size` pairs at a time.
    static let chunked: Set = ["eap", "eap-ig", "search", "prune"]

    /// Edges `exact` patches: a few of SmolLM2's, from the input to the logits.
    static let exactEdges = "input->a1.h0<q>,m0->logits,a5.h8->m12,m10->a14.h1<v>,a14.h1->a20.h4<k>,a20.h4->a25.h2<q>,a29.h0->logits,m29->logits"

    /// The options each method runs with beyond `--method`, and how that is said in the table.
    static func work(_ method: String) -> (arguments: [String], description: String) {
        switch method {
        case "eap-ig": return (["--steps", "5"], "5 steps")
        case "exact": return (["--edges-from", exactEdges], "8 edges patched")
        case "search": return (["--steps", "1", "--search-steps", "2"], "EAP-IG of 1 step, 2 search steps")
        case "prune": return (["--train-steps", "3", "--pairs-per-step", "8"], "3 steps of 8 pairs")
        // τ = 100 removes every head and MLP: 301 passes and a gradient, the kinds of runs the default makes, in
        // about 8 minutes at 100 pairs within 0.25 GiB (the default's node phase alone takes about 25). At 1000 pairs
        // every pass runs each chunk's prompts again, hours in all: `--limit` stops it (memory.md's resumed rows).
        case "acdc": return (["--tau", "100"], "τ = 100 (every node removed)")
        default: return ([], "scores every edge")
        }
    }

    static func run(_ context: BenchmarkContext) throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("circuits")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw BenchmarkError("\(executable.path) is not built; run `swift build -c release` first")
        }
        let counts = (context.option("--pairs") ?? "100,1000").split(separator: ",").compactMap { Int($0) }
        let budget = Double(context.option("--budget") ?? "1") ?? 1
        let methods = (context.option("--methods") ?? "eap").split(separator: ",").map(String.init)
        let chunks = (context.option("--chunks") ?? "8").split(separator: ",").compactMap { Int($0) }
        let limit = context.option("--limit").flatMap(Double.init)
        let known = ["eap", "eap-ig", "exact", "search", "prune", "acdc"]
        if let unknown = methods.first(where: { !known.contains($0) }) {
            throw BenchmarkError("--methods: unknown method '\(unknown)' (known: \(known.joined(separator: ", ")))")
        }
        guard !counts.isEmpty, !chunks.isEmpty, counts.allSatisfy({ $0 >= 1 }), chunks.allSatisfy({ $0 >= 1 }) else {
            throw BenchmarkError("--pairs and --chunks take comma-separated positive counts")
        }
        var configurations: [Configuration] = []
        for method in methods {
            for n in counts {
                // EAP: the whole batch's caches and EAP's default chunk first, to show what the budget saves.
                if method == "eap", n == counts.first {
                    configurations += [Configuration(method: method, pairs: n, budget: nil, chunk: 32),
                                       Configuration(method: method, pairs: n, budget: budget, chunk: 32)]
                }
                configurations += chunked.contains(method) ? chunks.map { Configuration(method: method, pairs: n, budget: budget, chunk: $0) }
                    : [Configuration(method: method, pairs: n, budget: budget, chunk: nil)]
            }
        }
        let model = try context.model()
        let weights = Double(model.parameterCount * 4)
        var table = ResultsTable(
            title: "Peak memory of circuits discover per method (IOI)",
            command: context.command,
            notes: ["Each row is `circuits discover --task ioi -n N --method M --held-out 0 --chunk-size C` (eap, eap-ig, search, prune; exact and ACDC run the experiment's chunks, sized by the budget) and the row's work options in its own process, "
                    + "with CIRCUITKIT_CACHE_GB set to the budget (default: half the machine's memory), which bounds the patching caches of all experiments "
                    + "and the per-chunk caches of masked gradients together, and keeps the pool of freed buffers to half of it (at most 4 GiB), freeing kept buffers where the memory held would pass the most ever in use. "
                    + "Peak resident memory of the process, the selection and the circuit's evaluation on its pairs included.",
                    "work: what each method ran. A method's memory is that of one step, gradient or patched pass over a chunk, however many it runs: "
                    + "its steps are cut short here so that 1000 pairs take minutes"
                    + (limit.map { "; a run still going after \(format($0, 0)) s was stopped and its peak so far reported" } ?? ""),
                    "The model's weights as Float32: \(mebibytes(weights)). Wall times are for orientation only."],
            header: ["method", "work", "pairs", "cache budget", "chunk", "peak memory", "over the weights", "wall", "faithfulness"])
        for configuration in configurations {
            let budgetText = configuration.budget.map { "\(format($0, 2)) GiB" } ?? "default (whole batch)"
            let chunkText = configuration.chunk.map { "\($0)" } ?? "—"
            progress("memory: \(configuration.method), \(configuration.pairs) pairs, budget \(budgetText), chunk \(chunkText)")
            let out = context.scratch.appendingPathComponent("memory-\(configuration.method)-\(configuration.pairs)-\(chunkText)")
            var environment = ProcessInfo.processInfo.environment
            if let gib = configuration.budget { environment["CIRCUITKIT_CACHE_GB"] = String(gib) }
            let work = work(configuration.method)
            let arguments = [executable.path, "discover", "--model", try context.modelPath.path, "--task", "ioi", "-n", "\(configuration.pairs)",
                             "--method", configuration.method, "--held-out", "0", "--out", out.path, "--render-timeout", "0", "--top", "0"]
                + (configuration.chunk.map { ["--chunk-size", "\($0)"] } ?? []) + work.arguments
            let start = now()
            let (peak, output, stopped) = try peakMemory(arguments, environment: environment, python: context.baseline.python, limit: limit)
            let seconds = now() - start
            let faithfulness = output.split(separator: "\n").first { $0.hasPrefix("faithfulness") }
                .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.map(String.init) ?? "—"
            table.rows.append([configuration.method, work.description, "\(configuration.pairs)", budgetText, chunkText,
                               mebibytes(peak), mebibytes(peak - weights), stopped ? "stopped at \(format(seconds, 0)) s" : "\(format(seconds, 0)) s",
                               faithfulness])
            try table.write("memory", to: context.resultsDirectory)
        }
    }

    /// Runs `arguments` under a Python wrapper (stopping it after `limit` seconds, when given) and returns
    /// the child's peak resident bytes, its stdout and whether it was stopped.
    private static func peakMemory(_ arguments: [String], environment: [String: String], python: String,
                                   limit: Double?) throws -> (Double, String, Bool) {
        let wrapper = """
            import resource, subprocess, sys
            limit = float(sys.argv[1]) if sys.argv[1] else None
            try:
                done = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE, timeout=limit)
                out, status = done.stdout, done.returncode
            except subprocess.TimeoutExpired as stopped:
                out, status = stopped.stdout or b"", 0
                print("stopped")
            sys.stdout.write(out.decode("utf-8", "replace"))
            print("peak_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            sys.exit(status)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", wrapper, limit.map { String($0) } ?? ""] + arguments
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let peak = text.split(separator: "\n").last(where: { $0.hasPrefix("peak_kib") })?.split(separator: " ").last.flatMap({ Double($0) })
        else { throw BenchmarkError("circuits discover failed (status \(process.terminationStatus)): \(arguments.joined(separator: " "))") }
        return (peak * 1024, text, text.split(separator: "\n").contains("stopped"))
    }
}

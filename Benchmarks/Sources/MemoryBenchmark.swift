import Foundation

/// Peak memory of `circuits discover --method eap` as the pairs grow, with the patching caches of
/// the whole batch kept (the default when they fit) or held to a budget (`CIRCUITKIT_CACHE_GB`).
///
/// Each configuration runs the built `circuits` executable in its own process under a small Python
/// wrapper that reports the child's peak resident memory (`getrusage`, RUSAGE_CHILDREN).
enum MemoryBenchmark {
    /// Pairs, cache budget in GiB (nil: the default), and EAP's pairs per chunk.
    struct Configuration {
        let pairs: Int
        let budget: Double?
        let chunk: Int
    }

    static func run(_ context: BenchmarkContext) throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("circuits")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw BenchmarkError("\(executable.path) is not built; run `swift build -c release` first")
        }
        let counts = (context.option("--pairs") ?? "100,1000").split(separator: ",").compactMap { Int($0) }
        let budget = Double(context.option("--budget") ?? "1") ?? 1
        var configurations: [Configuration] = []
        for n in counts {
            if n == counts.first { configurations += [Configuration(pairs: n, budget: nil, chunk: 32), Configuration(pairs: n, budget: budget, chunk: 32)] }
            configurations.append(Configuration(pairs: n, budget: budget, chunk: 8))
        }
        let model = try context.model()
        let weights = Double(model.parameterCount * 4)
        var table = ResultsTable(
            title: "Peak memory of discover --method eap (IOI)",
            command: context.command,
            notes: ["Each row is `circuits discover --task ioi -n N --method eap --held-out 0 --chunk-size C` in its own process, "
                    + "with CIRCUITKIT_CACHE_GB set to the budget (default: half the machine's memory), which bounds the patching caches of all experiments together and keeps the pool of freed buffers to half of it (at most 4 GiB). Peak resident memory of the process.",
                    "The model's weights as Float32: \(mebibytes(weights)). Wall times ran on a shared machine and are for orientation only."],
            header: ["pairs", "cache budget", "EAP chunk", "peak memory", "over the weights", "wall", "faithfulness"])
        for configuration in configurations {
            progress("memory: \(configuration.pairs) pairs, budget \(configuration.budget.map { "\($0) GiB" } ?? "default"), chunk \(configuration.chunk)")
            let out = context.scratch.appendingPathComponent("memory-\(configuration.pairs)-\(configuration.chunk)")
            var environment = ProcessInfo.processInfo.environment
            if let gib = configuration.budget { environment["CIRCUITKIT_CACHE_GB"] = String(gib) }
            let arguments = [executable.path, "discover", "--model", try context.modelPath.path, "--task", "ioi", "-n", "\(configuration.pairs)",
                             "--method", "eap", "--held-out", "0", "--chunk-size", "\(configuration.chunk)", "--out", out.path,
                             "--render-timeout", "0", "--top", "0"]
            let start = now()
            let (peak, output) = try peakMemory(arguments, environment: environment, python: context.baseline.python)
            let seconds = now() - start
            let faithfulness = output.split(separator: "\n").first { $0.hasPrefix("faithfulness") }
                .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.map(String.init) ?? "—"
            table.rows.append(["\(configuration.pairs)", configuration.budget.map { "\(format($0, 2)) GiB" } ?? "default (whole batch)",
                               "\(configuration.chunk)", mebibytes(peak), mebibytes(peak - weights), "\(format(seconds, 0)) s", faithfulness])
            try table.write("memory", to: context.resultsDirectory)
        }
    }

    /// Runs `arguments` under a Python wrapper and returns the child's peak resident bytes and its stdout.
    private static func peakMemory(_ arguments: [String], environment: [String: String], python: String) throws -> (Double, String) {
        let wrapper = """
            import resource, subprocess, sys
            done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
            sys.stdout.write(done.stdout.decode("utf-8", "replace"))
            print("peak_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            sys.exit(done.returncode)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", wrapper] + arguments
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
        return (peak * 1024, text)
    }
}

import Dispatch
import Foundation

/// Wall-clock seconds from a monotonic clock.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Best and all timings of `repeats` runs of `body` after `warmup` untimed runs.
func time(repeats: Int, warmup: Int = 1, _ body: () throws -> Void) rethrows -> (best: Double, all: [Double]) {
    for _ in 0..<warmup { try body() }
    var all: [Double] = []
    for _ in 0..<repeats {
        let start = now()
        try body()
        all.append(now() - start)
    }
    return (all.min() ?? 0, all)
}

/// Peak resident memory of this process, measured over a phase.
enum PeakMemory {
    /// Resets the kernel's high-water mark of resident memory (Linux; a no-op elsewhere).
    static func reset() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// The high-water mark since the last reset, in bytes (VmHWM), or nil off Linux.
    static func read() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// Runs `body` and returns its result with the peak resident memory during it.
    static func measure<T>(_ body: () throws -> T) rethrows -> (T, Int?) {
        reset()
        let result = try body()
        return (result, read())
    }
}

/// The machine, for results tables.
enum Machine {
    static var cpu: String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = info.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last
        return model.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    }

    static var description: String {
        let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(memory) GiB"
    }

    static var date: String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: Date())
    }
}

/// A Python baseline script under `Benchmarks/baselines/`, run in a child process.
struct Baseline {
    /// The interpreter: `--python`, else `$CIRCUITKIT_PYTHON`, else `python3`.
    let python: String
    /// Folder of the baseline scripts.
    let directory: URL

    /// Result of one script: its JSON object, or why there is none.
    enum Outcome {
        case result([String: Any])
        case unavailable(String)
    }

    /// Runs `script` with `arguments` plus `--json`; stderr is passed through as progress.
    func run(_ script: String, _ arguments: [String]) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, directory.appendingPathComponent(script).path] + arguments + ["--json"]
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONUNBUFFERED"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        do { try process.run() } catch { return .unavailable("cannot start \(python): \(error.localizedDescription)") }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            return .unavailable("\(script) exited with status \(process.terminationStatus)"
                + (process.terminationStatus == 3 ? " (missing Python packages; see Benchmarks/baselines/README.md)" : ""))
        }
        guard let last = text.split(separator: "\n").last,
              let object = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
        else { return .unavailable("\(script) printed no JSON result") }
        return .result(object)
    }
}

/// Reads a number at a dotted path (`timings.best`) of a baseline's JSON.
func number(_ object: [String: Any], _ path: String) -> Double? {
    var current: Any? = object
    for key in path.split(separator: ".") { current = (current as? [String: Any])?[String(key)] }
    return (current as? NSNumber)?.doubleValue
}

/// A markdown results file under `Benchmarks/results/`.
struct ResultsTable {
    let title: String
    let command: String
    var notes: [String] = []
    var header: [String]
    var rows: [[String]] = []

    /// The markdown text.
    var markdown: String {
        var lines = ["# \(title)", "", "- Command: `\(command)`", "- Machine: \(Machine.description)", "- Date: \(Machine.date)"]
        lines += notes.map { "- \($0)" }
        lines += ["", "| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in "---" }.joined(separator: "|") + "|"]
        lines += rows.map { "| " + $0.joined(separator: " | ") + " |" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `<directory>/<name>.md` and prints the table.
    func write(_ name: String, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("\(name).md")
        try Data(markdown.utf8).write(to: url, options: .atomic)
        print(markdown)
        FileHandle.standardError.write(Data("wrote \(url.path)\n".utf8))
    }
}

/// `x` with `digits` decimals, or "—" when nil.
func format(_ x: Double?, _ digits: Int = 2) -> String {
    guard let x else { return "—" }
    return String(format: "%.\(digits)f", x)
}

/// Bytes as MiB, or "—".
func mebibytes(_ bytes: Double?) -> String {
    guard let bytes else { return "—" }
    return String(format: "%.0f MiB", bytes / 1_048_576)
}

/// Progress on stderr.
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

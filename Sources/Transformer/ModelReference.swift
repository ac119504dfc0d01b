import Foundation

/// What a user can pass as `--model`: a path, an HF hub cache name, or the default model.
public enum ModelReference: Equatable, Sendable {
    /// SmolLM2-135M-Instruct, fetched into the cache on first use.
    case defaultModel
    /// A `.gguf` file or an HF model directory.
    case path(URL)
    /// A model id found under the HF hub cache (`gpt2`, `HuggingFaceTB/SmolLM2-135M`).
    case hubCache(String)

    /// Interprets a `--model` argument: nil or the default name → default; an existing path → path;
    /// anything else → an HF cache name.
    public init(_ argument: String?) {
        guard let argument, !argument.isEmpty, argument != "default", argument.lowercased() != DefaultModel.name else {
            self = .defaultModel
            return
        }
        let expanded = (argument as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) || argument.hasSuffix(".gguf") || argument.hasPrefix("/") || argument.hasPrefix(".") {
            self = .path(URL(fileURLWithPath: expanded))
        } else {
            self = .hubCache(argument)
        }
    }

    /// Display name.
    public var description: String {
        switch self {
        case .defaultModel: return DefaultModel.name
        case .path(let url): return url.path
        case .hubCache(let name): return name
        }
    }

    /// The HF hub cache root: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    public static var hubCacheDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["HF_HUB_CACHE"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        if let home = env["HF_HOME"], !home.isEmpty { return URL(fileURLWithPath: home).appendingPathComponent("hub") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/huggingface/hub")
    }

    /// The file or directory to load, fetching the default model when it is missing and `fetch` is true.
    public func resolve(fetch: Bool = true, progress: (String) -> Void = { _ in }) throws -> URL {
        switch self {
        case .defaultModel:
            if DefaultModel.isCached { return DefaultModel.cachedURL }
            guard fetch else {
                throw ModelFileError(DefaultModel.cachedURL.path, "default model not fetched; run `circuits fetch-model`")
            }
            return try DefaultModel.fetch(progress: progress)
        case .path(let url):
            guard FileManager.default.fileExists(atPath: url.path) else { throw ModelFileError(url.path, "no such file or directory") }
            return url
        case .hubCache(let name):
            return try Self.findInHubCache(name)
        }
    }

    /// The snapshot directory of `name` in the HF hub cache.
    static func findInHubCache(_ name: String) throws -> URL {
        let root = hubCacheDirectory
        // `gpt2` is also cached under its newer id `openai-community/gpt2`.
        var ids = [name]
        if !name.contains("/") { ids.append("openai-community/\(name)") }
        for id in ids {
            let repo = root.appendingPathComponent("models--" + id.replacingOccurrences(of: "/", with: "--"))
            let snapshots = repo.appendingPathComponent("snapshots")
            guard FileManager.default.fileExists(atPath: snapshots.path) else { continue }
            if let ref = try? String(contentsOf: repo.appendingPathComponent("refs/main"), encoding: .utf8) {
                let snapshot = snapshots.appendingPathComponent(ref.trimmingCharacters(in: .whitespacesAndNewlines))
                if FileManager.default.fileExists(atPath: snapshot.appendingPathComponent("config.json").path) { return snapshot }
            }
            let candidates = (try? FileManager.default.contentsOfDirectory(at: snapshots, includingPropertiesForKeys: [.contentModificationDateKey])) ?? []
            let usable = candidates.filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
            let newest = usable.max { a, b in
                let da = (try? a.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                let db = (try? b.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
                return da < db
            }
            if let newest { return newest }
        }
        throw ModelFileError(name, "unknown model: not a file or directory, not in the HF hub cache (\(root.path)), and not '\(DefaultModel.name)'")
    }

    /// Resolves and loads the model.
    public func load(fetch: Bool = true, progress: (String) -> Void = { _ in }) throws -> TransformerModel {
        let url = try resolve(fetch: fetch, progress: progress)
        return try TransformerModel.load(contentsOf: url, name: self == .defaultModel ? DefaultModel.name : description)
    }
}

extension TransformerModel {
    /// Loads a `.gguf` file or an HF model directory (`config.json` + safetensors).
    public static func load(contentsOf url: URL, name: String? = nil) throws -> TransformerModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ModelFileError(url.path, "no such file or directory")
        }
        let source = name ?? url.path
        if !isDirectory.boolValue {
            guard url.pathExtension.lowercased() == "gguf" else {
                throw ModelFileError(url.path, "not a model: expected a .gguf file or an HF model directory")
            }
            let file = try GGUFFile(contentsOf: url)
            let name = file.metadata["general.architecture"]?.stringValue ?? "(none)"
            guard let load = Architecture.gguf(named: name)?.loadGGUF else {
                let supported = Architecture.all.filter { $0.loadGGUF != nil }.compactMap(\.ggufName).joined(separator: ", ")
                throw ModelFileError(url.path, "unsupported GGUF architecture \(quoted(name)) (supported: \(supported))")
            }
            return try load(file, source)
        }
        let configURL = url.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ModelFileError(url.path, "not a model directory: no config.json")
        }
        let data = try readInputFile(configURL)
        struct ModelType: Decodable { let model_type: String? }
        let modelType = try decodeConfig(ModelType.self, from: data, path: configURL.path).model_type ?? "(missing)"
        guard let architecture = Architecture.directory(modelType: modelType) else {
            let supported = Architecture.all.map(\.modelType).joined(separator: ", ")
            throw ModelFileError(configURL.path, "unsupported model_type \(quoted(modelType)) (supported: \(supported))")
        }
        let weights = try openWeights(directory: url)
        let tokenizer = try loadTokenizer(directory: url)
        return try architecture.loadDirectory(data, configURL.path, weights, tokenizer, source)
    }

    /// The safetensors weights of an HF directory: `model.safetensors` or the shards its index lists.
    private static func openWeights(directory: URL) throws -> TensorSource {
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: single.path) { return try SafetensorsFile(contentsOf: single) }
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        guard FileManager.default.fileExists(atPath: indexURL.path) else {
            throw ModelFileError(directory.path, "no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints are not supported)")
        }
        struct Index: Decodable { let weight_map: [String: String] }
        let index = try decodeJSON(Index.self, from: readInputFile(indexURL), path: indexURL.path, context: "invalid index: ")
        return try ShardedTensorSource(directory: directory, files: Array(Set(index.weight_map.values)).sorted())
    }

    /// The tokenizer of an HF directory: `tokenizer.json`, else `vocab.json` + `merges.txt`, else none.
    private static func loadTokenizer(directory: URL) throws -> Tokenizer? {
        let json = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json.path) { return try Tokenizer(tokenizerJSON: json) }
        let vocab = directory.appendingPathComponent("vocab.json"), merges = directory.appendingPathComponent("merges.txt")
        if FileManager.default.fileExists(atPath: vocab.path), FileManager.default.fileExists(atPath: merges.path) {
            return try Tokenizer(vocabJSON: vocab, mergesTXT: merges)
        }
        return nil
    }
}

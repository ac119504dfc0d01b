import Foundation

/// A model architecture the loaders know: the names its files give it and how to load each form.
///
/// Adding an architecture is one file (`GPT2.swift`, `Llama.swift`): its `Codable` config, its
/// weight loading, and an `Architecture` value listed in `all`.
public struct Architecture: Sendable {
    /// HF `config.json` `model_type`.
    public let modelType: String
    /// GGUF `general.architecture`, when the architecture loads from GGUF.
    public let ggufName: String?
    /// Loads an HF directory: its `config.json` bytes and path, its weights and tokenizer, and a source name.
    let loadDirectory: @Sendable (_ config: Data, _ configPath: String, _ weights: TensorSource, _ tokenizer: Tokenizer?, _ source: String)
        throws -> TransformerModel
    /// Loads a GGUF file with a source name.
    let loadGGUF: (@Sendable (_ file: GGUFFile, _ source: String) throws -> TransformerModel)?

    /// Every architecture, in the order error messages list them.
    public static let all: [Architecture] = [.gpt2, .llama]

    /// The architecture of an HF `model_type`.
    static func directory(modelType: String) -> Architecture? { all.first { $0.modelType == modelType } }

    /// The architecture of a GGUF `general.architecture` that loads from GGUF.
    static func gguf(named name: String) -> Architecture? { all.first { $0.ggufName == name && $0.loadGGUF != nil } }
}

/// Decodes an architecture's `config.json`, with an error naming the file and the bad key.
func decodeConfig<T: Decodable>(_ type: T.Type, from data: Data, path: String) throws -> T {
    try decodeJSON(type, from: data, path: path, context: "invalid config: ")
}

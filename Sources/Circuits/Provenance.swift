import Foundation
import Transformer

/// Where a circuit came from (design §8): the tool, the model and pairs it was found on, with the
/// files' SHA-256, and the method's options, so that it can be evaluated and reproduced later.
///
/// `date` is when the record was first written; a rerun whose record differs only in it keeps the
/// earlier file (`Circuit.sameRecord`).
public struct Provenance: Codable, Sendable, Equatable {
    /// An option value as it appears in the JSON: a number, a string or a flag.
    public enum Value: Codable, Sendable, Equatable {
        case int(Int), double(Double), string(String), bool(Bool)

        public init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let flag = try? container.decode(Bool.self) { self = .bool(flag) }
            else if let integer = try? container.decode(Int.self) { self = .int(integer) }
            else if let number = try? container.decode(Double.self) { self = .double(number) }
            else { self = .string(try container.decode(String.self)) }
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .int(let value): try container.encode(value)
            case .double(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            case .bool(let value): try container.encode(value)
            }
        }
    }

    /// The program that wrote the record, e.g. `CircuitKit 0.1`.
    public var tool: String
    /// When the record was first written, ISO 8601 in UTC.
    public var date: String
    /// The model as given (`--model`) and the SHA-256 of its file (for an HF folder, of `config.json`
    /// followed by `model.safetensors`).
    public var model: String
    public var modelSHA256: String?
    /// The built-in task and the seeds of its pairs and of the fresh pairs, when the pairs came from one.
    public var task: String?
    public var seed: Int?
    public var heldOutSeed: Int?
    /// The pairs file (absolute path), its SHA-256 and `--format`, when the pairs came from one.
    public var data: String?
    public var dataSHA256: String?
    public var format: String?
    /// Pairs the circuit was found on, and fresh pairs asked for (`--held-out`).
    public var pairs: Int
    public var heldOutPairs: Int
    public var method: String
    /// The method's options with their values in this run (defaults included), snake_case.
    public var methodOptions: [String: Value]
    public var metric: Metric
    public var ablation: Ablation

    /// Creates a record of a run's inputs.
    public init(tool: String, date: String, model: String, modelSHA256: String?, task: String?, seed: Int?, heldOutSeed: Int?,
                data: String?, dataSHA256: String?, format: String?, pairs: Int, heldOutPairs: Int, method: String,
                methodOptions: [String: Value], metric: Metric, ablation: Ablation) {
        self.tool = tool
        self.date = date
        self.model = model
        self.modelSHA256 = modelSHA256
        self.task = task
        self.seed = seed
        self.heldOutSeed = heldOutSeed
        self.data = data
        self.dataSHA256 = dataSHA256
        self.format = format
        self.pairs = pairs
        self.heldOutPairs = heldOutPairs
        self.method = method
        self.methodOptions = methodOptions
        self.metric = metric
        self.ablation = ablation
    }

    enum CodingKeys: String, CodingKey {
        case tool, date, model, task, seed, data, format, pairs, method, metric, ablation
        case modelSHA256 = "model_sha256"
        case heldOutSeed = "held_out_seed"
        case dataSHA256 = "data_sha256"
        case heldOutPairs = "held_out_pairs"
        case methodOptions = "method_options"
    }

    /// The SHA-256 of a model: of the file, or of an HF folder's `config.json` followed by its
    /// `model.safetensors`; nil when those files are not there.
    public static func modelSHA256(at url: URL) throws -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
        let files = isDirectory.boolValue ? ["config.json", "model.safetensors"].map { url.appendingPathComponent($0) } : [url]
        guard files.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) else { return nil }
        return try SHA256.hex(ofFiles: files)
    }
}

extension Circuit {
    /// Whether two circuit JSON records are the same apart from `provenance.date`.
    public static func sameRecord(_ a: Data, _ b: Data) -> Bool {
        if a == b { return true }
        /// The record without its date, serialized again with sorted keys.
        func undated(_ data: Data) -> Data? {
            guard var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
            if var provenance = object["provenance"] as? [String: Any] {
                provenance["date"] = nil
                object["provenance"] = provenance
            }
            return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        }
        guard let first = undated(a) else { return false }
        return first == undated(b)
    }
}

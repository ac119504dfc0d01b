import Foundation
import Kernels

/// A safetensors file: an 8-byte header length, a JSON directory, then raw little-endian tensors.
///
/// Reads F32, F16 and BF16 tensors (converted to Float32). The directory is validated against the
/// file size when opened, so truncation is reported by name, not discovered by a crash.
public struct SafetensorsFile: TensorSource {
    /// One tensor's directory entry.
    public struct Entry: Sendable {
        /// The dtype string as stored (`F32`, `F16`, `BF16`, ...).
        public let dtype: String
        /// Row-major shape.
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let range: Range<Int>
    }

    public let path: String
    /// Entries by tensor name.
    public let entries: [String: Entry]
    /// The `__metadata__` strings, if any.
    public let metadata: [String: String]
    public let tensorNames: [String]
    private let data: Data

    /// Parses the safetensors file at `url`.
    public init(contentsOf url: URL) throws {
        var reader = try ByteReader(url: url)
        path = url.path
        let headerLength = try reader.read(UInt64.self, "header length")
        guard headerLength <= UInt64(reader.data.count - 8) else {
            throw ModelFileError(path, "truncated: header claims \(headerLength) bytes, file has \(reader.data.count)")
        }
        let headerBytes = try reader.bytes(Int(headerLength), "header")
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw ModelFileError(path, "corrupted header: not valid JSON")
        }
        guard let directory = json as? [String: Any] else { throw ModelFileError(path, "corrupted header: not a JSON object") }
        let dataStart = 8 + Int(headerLength)
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        var ordered: [(Int, String)] = []
        for (name, value) in directory {
            if name == "__metadata__" {
                for (k, v) in value as? [String: Any] ?? [:] { metadata[k] = v as? String }
                continue
            }
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
            else { throw ModelFileError(path, "corrupted header: bad entry for tensor '\(name)'") }
            let begin = dataStart + offsets[0], end = dataStart + offsets[1]
            guard offsets[0] >= 0, begin <= end, shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelFileError(path, "corrupted header: bad offsets for tensor '\(name)'")
            }
            guard end <= reader.data.count else {
                throw ModelFileError(path, "truncated: tensor '\(name)' needs bytes up to \(end), file has \(reader.data.count)")
            }
            if let width = Self.elementWidth(dtype) {
                let expected = shape.reduce(1, *) * width
                guard end - begin == expected else {
                    throw ModelFileError(path, "tensor '\(name)' has \(end - begin) bytes, expected \(expected) for \(dtype) \(shape)")
                }
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: begin..<end)
            ordered.append((begin, name))
        }
        self.entries = entries
        self.metadata = metadata
        self.tensorNames = ordered.sorted { $0 < $1 }.map(\.1)
        self.data = reader.data
    }

    /// Bytes per element of the dtypes CircuitKit reads, nil for others.
    private static func elementWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F32": return 4
        case "F16", "BF16": return 2
        default: return nil
        }
    }

    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    public func floats(_ name: String) throws -> FloatBuffer {
        guard let entry = entries[name] else { throw ModelFileError(path, "missing tensor '\(name)'") }
        let type: GGMLType
        switch entry.dtype {
        case "F32": type = .f32
        case "F16": type = .f16
        case "BF16": type = .bf16
        default: throw ModelFileError(path, "tensor '\(name)' has unsupported dtype \(entry.dtype) (supported: F32, F16, BF16)")
        }
        let count = entry.shape.reduce(1, *)
        let out = FloatBuffer(count: count)
        data.withUnsafeBytes { raw in type.dequantize(out.pointer, raw.baseAddress! + entry.range.lowerBound, count) }
        return out
    }
}

/// The tensors of a model split over several safetensors files (`model-00001-of-00002.safetensors`…).
public struct ShardedTensorSource: TensorSource {
    public let path: String
    private let shards: [SafetensorsFile]
    private let owner: [String: Int]
    public let tensorNames: [String]

    /// Opens every shard; a tensor present in two shards is an error.
    public init(directory: URL, files: [String]) throws {
        path = directory.path
        shards = try files.map { try SafetensorsFile(contentsOf: directory.appendingPathComponent($0)) }
        var owner: [String: Int] = [:]
        var names: [String] = []
        for (i, shard) in shards.enumerated() {
            for name in shard.tensorNames {
                if owner[name] != nil { throw ModelFileError(shard.path, "tensor '\(name)' also appears in another shard") }
                owner[name] = i
                names.append(name)
            }
        }
        self.owner = owner
        tensorNames = names
    }

    public func shape(of name: String) -> [Int]? { owner[name].flatMap { shards[$0].shape(of: name) } }

    public func floats(_ name: String) throws -> FloatBuffer {
        guard let i = owner[name] else { throw ModelFileError(path, "missing tensor '\(name)'") }
        return try shards[i].floats(name)
    }
}

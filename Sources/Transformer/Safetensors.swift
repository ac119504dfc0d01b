import Foundation
import Kernels

/// A safetensors file: an 8-byte header length, a JSON directory, then raw little-endian tensors.
///
/// Reads F32, F16 and BF16 tensors (converted to Float32). The directory is validated against the
/// file size when opened (offsets inside the data section, byte counts matching dtype and shape,
/// no arithmetic overflow, no tensor named twice, no two tensors sharing bytes), so truncation or
/// corruption is reported by name, not discovered by a crash or by wrong weights. Tensors of other dtypes are listed; reading one throws an error naming its dtype.
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

    /// The file, for error messages.
    public let path: String
    /// Entries by tensor name.
    public let entries: [String: Entry]
    /// The `__metadata__` strings, if any.
    public let metadata: [String: String]
    /// Names of all tensors, in the order of their data in the file.
    public let tensorNames: [String]
    private let data: Data

    /// Parses the safetensors file at `url` (memory-mapped).
    public init(contentsOf url: URL) throws {
        try self.init(reader: ByteReader(url: url))
    }

    /// Parses safetensors bytes already in memory; `path` names them in errors.
    public init(data: Data, path: String) throws {
        try self.init(reader: ByteReader(data: data, path: path))
    }

    private init(reader: ByteReader) throws {
        var reader = reader
        path = reader.path
        let headerLength = try reader.read(UInt64.self, "header length")
        guard headerLength <= UInt64(reader.remaining) else {
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
        if let key = Self.repeatedTopLevelKey(headerBytes) {
            throw ModelFileError(path, "corrupted header: tensor \(quoted(key)) is listed twice")
        }
        let dataStart = reader.offset
        let dataSize = reader.remaining
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        var ordered: [(Int, String)] = []
        for (key, value) in directory {
            let name = quoted(key)
            if key == "__metadata__" {
                guard let strings = value as? [String: String] else {
                    throw ModelFileError(path, "corrupted header: __metadata__ is not an object of strings")
                }
                metadata = strings
                continue
            }
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw ModelFileError(path, "corrupted header: tensor \(name) needs dtype (string), shape and data_offsets (integers)")
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw ModelFileError(path, "corrupted header: tensor \(name) has data_offsets \(offsets)")
            }
            guard offsets[1] <= dataSize else {
                throw ModelFileError(path, "truncated: tensor \(name) has data_offsets \(offsets), the data section has \(dataSize) bytes")
            }
            var elements = 1
            for dimension in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard dimension >= 0, !overflow, product <= dataSize else {
                    throw ModelFileError(path, "corrupted header: tensor \(name) has impossible shape \(shape)")
                }
                elements = product
            }
            if let width = Self.elementWidth(dtype) {
                let expected = elements * width
                guard offsets[1] - offsets[0] == expected else {
                    throw ModelFileError(path, "corrupted header: tensor \(name) has \(offsets[1] - offsets[0]) bytes, expected \(expected) for \(quoted(dtype, quote: "")) \(shape)")
                }
            }
            let range = (dataStart + offsets[0])..<(dataStart + offsets[1])
            entries[key] = Entry(dtype: dtype, shape: shape, range: range)
            ordered.append((range.lowerBound, key))
        }
        let byOffset = ordered.sorted { $0 < $1 }.map(\.1)
        var previous: String?
        for key in byOffset where !entries[key]!.range.isEmpty {
            if let previous, entries[previous]!.range.upperBound > entries[key]!.range.lowerBound {
                /// Tensor `name`'s data_offsets as the header gives them.
                func offsets(_ name: String) -> [Int] { [entries[name]!.range.lowerBound - dataStart, entries[name]!.range.upperBound - dataStart] }
                throw ModelFileError(path, "corrupted header: tensors \(quoted(previous)) (data_offsets \(offsets(previous))) and "
                    + "\(quoted(key)) (data_offsets \(offsets(key))) overlap")
            }
            previous = key
        }
        self.entries = entries
        self.metadata = metadata
        self.tensorNames = byOffset
        self.data = reader.data
    }

    /// The first key that appears twice in the top-level object of the JSON text `header`, if any
    /// (JSONSerialization silently keeps one of the two values).
    private static func repeatedTopLevelKey(_ header: Data) -> String? {
        let bytes = [UInt8](header)
        var seen = Set<String>()
        var depth = 0, i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                guard depth == 1, let colon = bytes[min(i + 1, bytes.count)...].first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }),
                    colon == UInt8(ascii: ":"), i < bytes.count,
                    let key = (try? JSONSerialization.jsonObject(with: Data(bytes[start...i]), options: .fragmentsAllowed)) as? String
                else { break }
                if !seen.insert(key).inserted { return key }
            default: break
            }
            i += 1
        }
        return nil
    }

    /// Bytes per element of the safetensors dtypes, nil for unknown (or sub-byte) dtypes.
    private static func elementWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3": return 1
        case "U16", "I16", "F16", "BF16": return 2
        case "U32", "I32", "F32": return 4
        case "U64", "I64", "F64": return 8
        default: return nil
        }
    }

    /// Row-major shape of tensor `name`, or nil when absent.
    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    /// Tensor `name` converted to Float32, row-major; throws for a missing tensor or a dtype
    /// other than F32, F16 and BF16.
    public func floats(_ name: String) throws -> FloatBuffer {
        guard let entry = entries[name] else { throw ModelFileError(path, "missing tensor '\(name)'") }
        let type: GGMLType
        switch entry.dtype {
        case "F32": type = .f32
        case "F16": type = .f16
        case "BF16": type = .bf16
        default: throw ModelFileError(path, "tensor '\(name)' has unsupported dtype \(quoted(entry.dtype, quote: "")) (supported: F32, F16, BF16)")
        }
        let count = entry.shape.reduce(1, *)
        let out = FloatBuffer(uninitializedCount: count)
        data.withUnsafeBytes { raw in type.dequantize(out.pointer, raw.baseAddress! + entry.range.lowerBound, count) }
        return out
    }
}

/// The tensors of a model split over several safetensors files (`model-00001-of-00002.safetensors`…).
public struct ShardedTensorSource: TensorSource {
    /// The directory holding the shards, for error messages.
    public let path: String
    private let shards: [SafetensorsFile]
    private let owner: [String: Int]
    /// Names of all tensors, shard by shard.
    public let tensorNames: [String]

    /// Opens every shard; a tensor present in two shards is an error.
    public init(directory: URL, files: [String]) throws {
        path = directory.path
        shards = try files.map { try SafetensorsFile(contentsOf: directory.appendingPathComponent($0)) }
        var owner: [String: Int] = [:]
        var names: [String] = []
        for (i, shard) in shards.enumerated() {
            for name in shard.tensorNames {
                if let other = owner[name] { throw ModelFileError(shard.path, "tensor \(quoted(name)) also appears in \(shards[other].path)") }
                owner[name] = i
                names.append(name)
            }
        }
        self.owner = owner
        tensorNames = names
    }

    /// Row-major shape of tensor `name`, or nil when no shard has it.
    public func shape(of name: String) -> [Int]? { owner[name].flatMap { shards[$0].shape(of: name) } }

    /// Tensor `name` converted to Float32 by the shard that holds it.
    public func floats(_ name: String) throws -> FloatBuffer {
        guard let i = owner[name] else { throw ModelFileError(path, "missing tensor '\(name)'") }
        return try shards[i].floats(name)
    }
}

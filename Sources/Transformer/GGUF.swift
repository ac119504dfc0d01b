import Foundation
import Kernels

/// A metadata value of a GGUF file.
public enum GGUFValue: Equatable, Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as an integer, when it is one.
    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as a floating-point number, when it is numeric.
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }

    /// The value as text, when it is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a boolean, when it is one.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements, when the value is an array.
    public var arrayValue: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}

/// A tensor's entry in a GGUF file's header.
public struct GGUFTensorInfo: Sendable {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// GGUF dimensions, innermost first (`ne[0]` is the contiguous one).
    public let dimensions: [Int]
    /// The ggml type id as stored in the file.
    public let typeID: UInt32
    /// Offset of the data from the start of the file.
    public let fileOffset: Int

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Row-major shape, outermost first (the reverse of `dimensions`).
    public var shape: [Int] { dimensions.reversed() }
}

/// A GGUF (v2/v3) model file: metadata, tensor directory, and memory-mapped tensor data.
///
/// Parsing checks every count and offset against the file size, so a truncated or corrupted file
/// throws a `ModelFileError` naming the file and the field instead of crashing.
public struct GGUFFile: TensorSource {
    public let path: String
    /// Format version (2 or 3).
    public let version: Int
    /// Metadata key-value pairs.
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    private let index: [String: Int]
    private let data: Data

    /// Parses the GGUF file at `url`.
    public init(contentsOf url: URL) throws {
        var reader = try ByteReader(url: url)
        path = url.path
        let magic = try reader.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            throw ModelFileError(path, "not a GGUF file (bad magic)")
        }
        let version = Int(try reader.read(UInt32.self, "version"))
        guard version == 2 || version == 3 else {
            throw ModelFileError(path, "unsupported GGUF version \(version) (supported: 2, 3)")
        }
        self.version = version
        let tensorCount = try reader.read(UInt64.self, "tensor count")
        let kvCount = try reader.read(UInt64.self, "metadata count")
        // Each entry takes at least 8 bytes, so counts beyond the file size are corrupt.
        guard tensorCount < UInt64(reader.data.count), kvCount < UInt64(reader.data.count) else {
            throw ModelFileError(path, "corrupted header: \(tensorCount) tensors, \(kvCount) metadata entries")
        }

        var metadata: [String: GGUFValue] = [:]
        for i in 0..<Int(kvCount) {
            let key = try Self.readString(&reader, "metadata key #\(i)")
            let type = try reader.read(UInt32.self, "type of metadata '\(key)'")
            metadata[key] = try Self.readValue(&reader, type: type, key: key, depth: 0)
        }
        self.metadata = metadata

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(Int(tensorCount))
        var relativeOffsets: [UInt64] = []
        for i in 0..<Int(tensorCount) {
            let name = try Self.readString(&reader, "name of tensor #\(i)")
            let nDims = try reader.read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nDims >= 1, nDims <= 4 else {
                throw ModelFileError(path, "tensor '\(name)' has \(nDims) dimensions (expected 1 to 4)")
            }
            var dims: [Int] = []
            for _ in 0..<Int(nDims) {
                let d = try reader.read(UInt64.self, "dimensions of tensor '\(name)'")
                guard d > 0, d < 1 << 40 else { throw ModelFileError(path, "tensor '\(name)' has invalid dimension \(d)") }
                dims.append(Int(d))
            }
            let type = try reader.read(UInt32.self, "type of tensor '\(name)'")
            let offset = try reader.read(UInt64.self, "offset of tensor '\(name)'")
            infos.append(GGUFTensorInfo(name: name, dimensions: dims, typeID: type, fileOffset: 0))
            relativeOffsets.append(offset)
        }

        let alignment = metadata["general.alignment"]?.intValue ?? 32
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw ModelFileError(path, "invalid general.alignment \(alignment)")
        }
        let dataStart = (reader.offset + alignment - 1) / alignment * alignment
        var index: [String: Int] = [:]
        for (i, info) in infos.enumerated() {
            guard relativeOffsets[i] < UInt64(reader.data.count) else {
                throw ModelFileError(path, "truncated: tensor '\(info.name)' starts past the end of the file")
            }
            let absolute = dataStart + Int(relativeOffsets[i])
            infos[i] = GGUFTensorInfo(name: info.name, dimensions: info.dimensions, typeID: info.typeID, fileOffset: absolute)
            if let type = GGMLType(rawValue: info.typeID) {
                guard info.elementCount % type.blockSize == 0 else {
                    throw ModelFileError(path, "tensor '\(info.name)' has \(info.elementCount) elements, not a multiple of the \(type.name) block size \(type.blockSize)")
                }
                let end = absolute + info.elementCount / type.blockSize * type.bytesPerBlock
                guard end <= reader.data.count else {
                    throw ModelFileError(path, "truncated: tensor '\(info.name)' needs bytes up to \(end), file has \(reader.data.count)")
                }
            }
            if index[info.name] != nil { throw ModelFileError(path, "duplicate tensor '\(info.name)'") }
            index[info.name] = i
        }
        self.tensors = infos
        self.index = index
        self.data = reader.data
    }

    public var tensorNames: [String] { tensors.map(\.name) }

    public func shape(of name: String) -> [Int]? {
        index[name].map { tensors[$0].shape }
    }

    /// The directory entry of tensor `name`, if present.
    public func info(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    public func floats(_ name: String) throws -> FloatBuffer {
        guard let info = info(name) else { throw ModelFileError(path, "missing tensor '\(name)'") }
        guard let type = GGMLType(rawValue: info.typeID) else {
            throw ModelFileError(path, "tensor '\(name)' has unsupported type \(GGMLType.describe(info.typeID))")
        }
        let out = FloatBuffer(count: info.elementCount)
        data.withUnsafeBytes { raw in
            type.dequantize(out.pointer, raw.baseAddress! + info.fileOffset, info.elementCount)
        }
        return out
    }

    /// Metadata value `key` as an integer, or an error naming the key.
    public func requireInt(_ key: String) throws -> Int {
        guard let v = metadata[key]?.intValue else { throw ModelFileError(path, "missing or non-integer metadata '\(key)'") }
        return v
    }

    /// Metadata value `key` as a number, or an error naming the key.
    public func requireDouble(_ key: String) throws -> Double {
        guard let v = metadata[key]?.doubleValue else { throw ModelFileError(path, "missing or non-numeric metadata '\(key)'") }
        return v
    }

    /// Metadata value `key` as a string array, or an error naming the key.
    public func requireStrings(_ key: String) throws -> [String] {
        guard let array = metadata[key]?.arrayValue else { throw ModelFileError(path, "missing metadata array '\(key)'") }
        return try array.map {
            guard let s = $0.stringValue else { throw ModelFileError(path, "metadata '\(key)' is not an array of strings") }
            return s
        }
    }

    private static func readString(_ reader: inout ByteReader, _ what: String) throws -> String {
        let length = try reader.read(UInt64.self, "length of \(what)")
        guard length <= UInt64(reader.data.count) else {
            throw ModelFileError(reader.path, "corrupted: \(what) claims \(length) bytes")
        }
        return try reader.string(Int(length), what)
    }

    private static func readValue(_ reader: inout ByteReader, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        let what = "metadata '\(key)'"
        switch type {
        case 0: return .uint(UInt64(try reader.read(UInt8.self, what)))
        case 1: return .int(Int64(try reader.read(Int8.self, what)))
        case 2: return .uint(UInt64(try reader.read(UInt16.self, what)))
        case 3: return .int(Int64(try reader.read(Int16.self, what)))
        case 4: return .uint(UInt64(try reader.read(UInt32.self, what)))
        case 5: return .int(Int64(try reader.read(Int32.self, what)))
        case 6: return .float(Double(Float(bitPattern: try reader.read(UInt32.self, what))))
        case 7: return .bool(try reader.read(UInt8.self, what) != 0)
        case 8: return .string(try readString(&reader, what))
        case 9:
            guard depth == 0 else { throw ModelFileError(reader.path, "corrupted: nested array in \(what)") }
            let elementType = try reader.read(UInt32.self, what)
            let count = try reader.read(UInt64.self, what)
            guard count <= UInt64(reader.data.count - reader.offset) else {
                throw ModelFileError(reader.path, "corrupted: \(what) claims \(count) elements")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                values.append(try readValue(&reader, type: elementType, key: key, depth: depth + 1))
            }
            return .array(values)
        case 10: return .uint(try reader.read(UInt64.self, what))
        case 11: return .int(try reader.read(Int64.self, what))
        case 12: return .float(Double(bitPattern: try reader.read(UInt64.self, what)))
        default: throw ModelFileError(reader.path, "corrupted: \(what) has unknown value type \(type)")
        }
    }
}

import Foundation
import Kernels

/// A metadata value of a GGUF file.
public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
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

    /// The value as an error message shows it: a number, a quoted excerpt of text, or an array's size.
    public var description: String {
        switch self {
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .bool(let b): return "\(b)"
        case .string(let s): return quoted(s)
        case .array(let a): return "an array of \(a.count) values"
        }
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
    /// The element type, or nil when CircuitKit cannot read it (see `GGMLType.describe(typeID)`).
    public var type: GGMLType? { GGMLType(rawValue: typeID) }
}

/// A GGUF (v2/v3, little-endian) model file: metadata, tensor directory, and memory-mapped
/// tensor data.
///
/// Parsing checks every count, length and offset against the file size before using it, so a
/// truncated or corrupted file throws a `ModelFileError` naming the file and the field instead of
/// crashing or allocating absurd amounts of memory. Tensors of types CircuitKit cannot
/// dequantize are listed; reading one throws an error naming its type.
public struct GGUFFile: TensorSource {
    /// The file, for error messages.
    public let path: String
    /// Format version (2 or 3).
    public let version: Int
    /// Metadata key-value pairs.
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    private let index: [String: Int]
    private let data: Data

    /// Smallest encoding of a metadata entry: key length, empty key, value type, one-byte value.
    private static let minimumMetadataEntryBytes = 8 + 4 + 1
    /// Smallest encoding of a tensor directory entry: name length, empty name, dimension count,
    /// type, offset.
    private static let minimumTensorEntryBytes = 8 + 4 + 4 + 8
    /// ggml's limit on tensor dimensions.
    private static let maximumDimensions = 4
    /// Deepest nesting of metadata arrays accepted (real files nest at most once).
    private static let maximumArrayDepth = 8
    /// Most elements a tensor may claim; far beyond any real model, and small enough that byte
    /// counts derived from it cannot overflow.
    private static let maximumElements = 1 << 48

    /// Parses the GGUF file at `url` (memory-mapped).
    public init(contentsOf url: URL) throws {
        try self.init(reader: ByteReader(url: url))
    }

    /// Parses GGUF bytes already in memory; `path` names them in errors.
    public init(data: Data, path: String) throws {
        try self.init(reader: ByteReader(data: data, path: path))
    }

    private init(reader: ByteReader) throws {
        var reader = reader
        path = reader.path
        let magic = try reader.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            throw ModelFileError(path, "not a GGUF file (bad magic 0x\(String(magic.byteSwapped, radix: 16)), expected 0x47475546 \"GGUF\")")
        }
        let rawVersion = try reader.read(UInt32.self, "version")
        if rawVersion.byteSwapped == 2 || rawVersion.byteSwapped == 3 {
            throw ModelFileError(path, "big-endian GGUF files are not supported")
        }
        guard rawVersion == 2 || rawVersion == 3 else {
            throw ModelFileError(path, "unsupported GGUF version \(rawVersion) (supported: 2, 3)")
        }
        version = Int(rawVersion)
        let tensorCount = try reader.read(UInt64.self, "tensor count")
        let kvCount = try reader.read(UInt64.self, "metadata count")
        let room = UInt64(reader.remaining)
        // Bounds the allocations below; a truncation inside the entries is reported where it occurs.
        guard tensorCount <= room / UInt64(Self.minimumTensorEntryBytes),
            kvCount <= room / UInt64(Self.minimumMetadataEntryBytes)
        else {
            throw ModelFileError(path, "truncated or corrupted header: \(tensorCount) tensors and \(kvCount) metadata entries cannot fit in a file of \(reader.data.count) bytes")
        }

        var metadata: [String: GGUFValue] = [:]
        metadata.reserveCapacity(Int(kvCount))
        for i in 0..<Int(kvCount) {
            let key = try Self.readString(&reader, "metadata key #\(i)")
            let type = try reader.read(UInt32.self, "type of metadata \(quoted(key))")
            let value = try Self.readValue(&reader, type: type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw ModelFileError(path, "corrupted: duplicate metadata key \(quoted(key))")
            }
        }
        self.metadata = metadata

        var entries: [(name: String, dimensions: [Int], typeID: UInt32, offset: UInt64)] = []
        entries.reserveCapacity(Int(tensorCount))
        for i in 0..<Int(tensorCount) {
            let name = try Self.readString(&reader, "name of tensor #\(i)")
            let nDims = try reader.read(UInt32.self, "dimension count of tensor \(quoted(name))")
            guard nDims <= Self.maximumDimensions else {
                throw ModelFileError(path, "corrupted: tensor \(quoted(name)) has \(nDims) dimensions (at most \(Self.maximumDimensions))")
            }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<Int(nDims) {
                let d = try reader.read(UInt64.self, "dimensions of tensor \(quoted(name))")
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(clamping: d))
                guard d < UInt64(Int.max), !overflow, product <= Self.maximumElements else {
                    throw ModelFileError(path, "corrupted: tensor \(quoted(name)) has absurd dimensions (ne = \(dims.map(UInt64.init) + [d]))")
                }
                dims.append(Int(d))
                elements = product
            }
            let type = try reader.read(UInt32.self, "type of tensor \(quoted(name))")
            let offset = try reader.read(UInt64.self, "data offset of tensor \(quoted(name))")
            entries.append((name, dims, type, offset))
        }

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a <= 1 << 20, a & (a - 1) == 0 else {
                throw ModelFileError(path, "corrupted: general.alignment is \(value.intValue.map(String.init) ?? "not an integer"), expected a power of two")
            }
            alignment = a
        }
        let dataStart = (reader.offset + alignment - 1) / alignment * alignment
        let fileSize = reader.data.count
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(entries.count)
        var index: [String: Int] = [:]
        for entry in entries {
            let name = quoted(entry.name)
            guard entry.offset <= UInt64(fileSize), dataStart + Int(entry.offset) <= fileSize else {
                throw ModelFileError(path, "truncated: tensor \(name) starts at data offset \(entry.offset), past the end of the file (\(fileSize) bytes)")
            }
            guard entry.offset % UInt64(alignment) == 0 else {
                throw ModelFileError(path, "corrupted: tensor \(name) data offset \(entry.offset) is not a multiple of the alignment \(alignment)")
            }
            let info = GGUFTensorInfo(name: entry.name, dimensions: entry.dimensions, typeID: entry.typeID, fileOffset: dataStart + Int(entry.offset))
            if let type = info.type {
                let rowLength = info.dimensions.first ?? 1
                guard rowLength % type.blockSize == 0 else {
                    throw ModelFileError(path, "corrupted: tensor \(name) has rows of \(rowLength) elements, not a multiple of the \(type.name) block size \(type.blockSize)")
                }
                let end = info.fileOffset + info.elementCount / type.blockSize * type.bytesPerBlock
                guard end <= fileSize else {
                    throw ModelFileError(path, "truncated: tensor \(name) (\(type.name) \(info.shape)) needs bytes up to \(end), file has \(fileSize)")
                }
            }
            guard index.updateValue(infos.count, forKey: entry.name) == nil else {
                throw ModelFileError(path, "corrupted: duplicate tensor \(name)")
            }
            infos.append(info)
        }
        self.tensors = infos
        self.index = index
        self.data = reader.data
    }

    /// Names of all tensors, in file order.
    public var tensorNames: [String] { tensors.map(\.name) }

    /// Row-major shape of tensor `name`, or nil when absent.
    public func shape(of name: String) -> [Int]? {
        index[name].map { tensors[$0].shape }
    }

    /// The directory entry of tensor `name`, if present.
    public func info(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Tensor `name` dequantized to Float32, row-major; throws for a missing tensor or a type
    /// CircuitKit cannot read (named in the error, e.g. `unsupported type 7 (Q5_1)`).
    public func floats(_ name: String) throws -> FloatBuffer {
        guard let info = info(name) else { throw ModelFileError(path, "missing tensor \(quoted(name))") }
        guard let type = info.type else {
            throw ModelFileError(path, "tensor \(quoted(name)) has unsupported type \(GGMLType.describe(info.typeID)) (supported: \(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
        }
        let out = FloatBuffer(uninitializedCount: info.elementCount)
        data.withUnsafeBytes { raw in
            type.dequantize(out.pointer, raw.baseAddress! + info.fileOffset, info.elementCount)
        }
        return out
    }

    /// Metadata value `key` as an integer, or an error naming the key (and the value, when present).
    public func requireInt(_ key: String) throws -> Int {
        guard let value = metadata[key] else { throw ModelFileError(path, "missing or non-integer metadata '\(key)'") }
        guard let v = value.intValue else { throw ModelFileError.badField(path, key, value, expected: "an integer below 2^63") }
        return v
    }

    /// Metadata value `key` as a number, or an error naming the key (and the value, when present).
    public func requireDouble(_ key: String) throws -> Double {
        guard let value = metadata[key] else { throw ModelFileError(path, "missing or non-numeric metadata '\(key)'") }
        guard let v = value.doubleValue else { throw ModelFileError.badField(path, key, value, expected: "a number") }
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

    /// Reads a GGUF string: a UInt64 byte count, then UTF-8 bytes.
    private static func readString(_ reader: inout ByteReader, _ what: @autoclosure () -> String) throws -> String {
        let length = try reader.read(UInt64.self, "length of \(what())")
        guard length <= UInt64(reader.remaining) else {
            throw ModelFileError(reader.path, "truncated or corrupted: \(what()) at offset \(reader.offset - 8) claims \(length) bytes, only \(reader.remaining) remain")
        }
        return try reader.string(Int(length), what())
    }

    /// Smallest encoding of a metadata value of GGUF value type `type`, nil for unknown types.
    private static func minimumValueBytes(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        case 9: return 12
        default: return nil
        }
    }

    /// Reads a metadata value of GGUF value type `type` (arrays recursively).
    private static func readValue(_ reader: inout ByteReader, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        // Built only for an error message: arrays hold up to hundreds of thousands of values.
        func what() -> String { "metadata \(quoted(key))" }
        switch type {
        case 0: return .uint(UInt64(try reader.read(UInt8.self, what())))
        case 1: return .int(Int64(try reader.read(Int8.self, what())))
        case 2: return .uint(UInt64(try reader.read(UInt16.self, what())))
        case 3: return .int(Int64(try reader.read(Int16.self, what())))
        case 4: return .uint(UInt64(try reader.read(UInt32.self, what())))
        case 5: return .int(Int64(try reader.read(Int32.self, what())))
        case 6: return .float(Double(Float(bitPattern: try reader.read(UInt32.self, what()))))
        case 7: return .bool(try reader.read(UInt8.self, what()) != 0)
        case 8: return .string(try readString(&reader, what()))
        case 9:
            guard depth < maximumArrayDepth else {
                throw ModelFileError(reader.path, "corrupted: \(what()) nests arrays more than \(maximumArrayDepth) deep")
            }
            let elementType = try reader.read(UInt32.self, "element type of \(what())")
            guard let elementBytes = minimumValueBytes(elementType) else {
                throw ModelFileError(reader.path, "corrupted: \(what()) is an array of unknown value type \(elementType)")
            }
            let count = try reader.read(UInt64.self, "element count of \(what())")
            guard count <= UInt64(reader.remaining / elementBytes) else {
                throw ModelFileError(reader.path, "truncated or corrupted: \(what()) claims \(count) elements, only \(reader.remaining) bytes remain")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                values.append(try readValue(&reader, type: elementType, key: key, depth: depth + 1))
            }
            return .array(values)
        case 10: return .uint(try reader.read(UInt64.self, what()))
        case 11: return .int(try reader.read(Int64.self, what()))
        case 12: return .float(Double(bitPattern: try reader.read(UInt64.self, what())))
        default: throw ModelFileError(reader.path, "corrupted: \(what()) has unknown value type \(type)")
        }
    }
}

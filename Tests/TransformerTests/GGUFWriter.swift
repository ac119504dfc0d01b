import Foundation
import Transformer

/// GGUF v3 bytes holding `metadata` (in order) and `tensors` (their raw data, in order), for tests
/// that need a small or altered model file. Integers are written 64-bit, floats as float64.
func ggufBytes(metadata: [(String, GGUFValue)], tensors: [(info: GGUFTensorInfo, bytes: Data)] = []) -> Data {
    let alignment = 32
    var data = Data()
    /// Appends a GGUF string: byte count, then UTF-8.
    func string(_ text: String) {
        appendBytes(&data, UInt64(text.utf8.count))
        data.append(contentsOf: Array(text.utf8))
    }
    /// The GGUF value type `value` is written as.
    func typeID(_ value: GGUFValue) -> UInt32 {
        switch value {
        case .uint: return 10
        case .int: return 11
        case .float: return 12
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        }
    }
    /// Appends `value` (arrays take their element type from the first element).
    func write(_ value: GGUFValue) {
        switch value {
        case .uint(let v): appendBytes(&data, v)
        case .int(let v): appendBytes(&data, v)
        case .float(let v): appendBytes(&data, v.bitPattern)
        case .bool(let b): appendBytes(&data, UInt8(b ? 1 : 0))
        case .string(let s): string(s)
        case .array(let elements):
            appendBytes(&data, elements.first.map(typeID) ?? 8)
            appendBytes(&data, UInt64(elements.count))
            elements.forEach(write)
        }
    }
    /// Appends zeros up to the next multiple of the alignment.
    func pad() { data.append(contentsOf: [UInt8](repeating: 0, count: (alignment - data.count % alignment) % alignment)) }
    appendBytes(&data, UInt32(0x4655_4747))
    appendBytes(&data, UInt32(3))
    appendBytes(&data, UInt64(tensors.count))
    appendBytes(&data, UInt64(metadata.count))
    for (key, value) in metadata {
        string(key)
        appendBytes(&data, typeID(value))
        write(value)
    }
    var offset = 0
    for (info, bytes) in tensors {
        string(info.name)
        appendBytes(&data, UInt32(info.dimensions.count))
        info.dimensions.forEach { appendBytes(&data, UInt64($0)) }
        appendBytes(&data, info.typeID)
        appendBytes(&data, UInt64(offset))
        offset += (bytes.count + alignment - 1) / alignment * alignment
    }
    for (_, bytes) in tensors {
        pad()
        data.append(bytes)
    }
    return data
}

/// The GGUF file at `url` rewritten with metadata `changes` (a nil value removes the key).
func ggufBytes(rewriting url: URL, _ changes: [String: GGUFValue?]) throws -> Data {
    let file = try GGUFFile(contentsOf: url), raw = try Data(contentsOf: url)
    var metadata = file.metadata
    for (key, value) in changes { metadata[key] = value }
    let tensors = file.tensors.map { info in
        let type = info.type!
        return (info, raw.subdata(in: info.fileOffset..<(info.fileOffset + info.elementCount / type.blockSize * type.bytesPerBlock)))
    }
    return ggufBytes(metadata: metadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, tensors: tensors)
}

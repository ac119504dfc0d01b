import Foundation

/// A bounds-checked little-endian cursor over a model file's bytes, for the GGUF and safetensors
/// parsers. Every read that would run past the end throws a `ModelFileError` saying so.
struct ByteReader {
    /// The file's bytes (memory-mapped when read from disk).
    let data: Data
    /// Path used in error messages.
    let path: String
    /// Offset of the next read.
    var offset: Int = 0

    /// Maps `url` into memory.
    init(url: URL) throws {
        self.init(data: try readInputFile(url, mapped: true), path: url.path)
    }

    /// Reads `data`, naming it `path` in errors. The bytes are re-based to start at index 0.
    init(data: Data, path: String) {
        self.data = data.startIndex == 0 ? data : Data(data)
        self.path = path
    }

    /// Bytes left after `offset`.
    var remaining: Int { data.count - offset }

    /// Throws unless `count` more bytes are available; `what` names the field for the message.
    func require(_ count: Int, _ what: @autoclosure () -> String) throws {
        if count < 0 || offset > data.count - count {
            throw ModelFileError(path, "truncated: \(what()) needs \(count) bytes at offset \(offset), file has \(data.count) bytes")
        }
    }

    /// Reads a fixed-width little-endian integer.
    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try require(MemoryLayout<T>.size, what())
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    /// Reads `count` raw bytes.
    mutating func bytes(_ count: Int, _ what: @autoclosure () -> String) throws -> Data {
        try require(count, what())
        let slice = data.subdata(in: offset..<(offset + count))
        offset += count
        return slice
    }

    /// Reads `count` bytes as UTF-8 text (invalid sequences become U+FFFD).
    mutating func string(_ count: Int, _ what: @autoclosure () -> String) throws -> String {
        try require(count, what())
        let text = data.withUnsafeBytes { raw in
            String(decoding: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count)]), as: UTF8.self)
        }
        offset += count
        return text
    }
}

/// The bytes of the input file at `url` (a model, config, tokenizer, pairs, circuit or state file:
/// `kind` names it in errors), memory-mapped when `mapped`.
///
/// Refuses, in plain words, what is not a regular readable file (a directory, a FIFO, a device)
/// before opening it, so such a path neither blocks nor reads forever.
public func readInputFile(_ url: URL, as kind: String = "model file", mapped: Bool = false) throws -> Data {
    let path = url.path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ModelFileError(path, "cannot read file: no such file or directory")
    }
    guard !isDirectory.boolValue else { throw ModelFileError(path, "is a directory, not a \(kind)") }
    let type = (try? FileManager.default.attributesOfItem(atPath: url.resolvingSymlinksInPath().path))?[.type] as? FileAttributeType
    switch type {
    case .typeRegular?: break
    case .typeCharacterSpecial?, .typeBlockSpecial?: throw ModelFileError(path, "is a device, not a \(kind)")
    case .typeSocket?: throw ModelFileError(path, "is a socket, not a \(kind)")
    default: throw ModelFileError(path, "is not a regular file (a FIFO or other special file), not a \(kind)")
    }
    guard FileManager.default.isReadableFile(atPath: path) else {
        throw ModelFileError(path, "cannot read file: permission denied")
    }
    do {
        return try Data(contentsOf: url, options: mapped ? .alwaysMapped : [])
    } catch {
        let reason = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription
        throw ModelFileError(path, "cannot read file: \(reason ?? error.localizedDescription)")
    }
}

import Foundation
import Transformer

/// Every edge's score in a file another program reads (design §8, `discover --scores-out`), in the
/// graph's edge order; the format follows the file's extension:
///
/// - `.npy`: a float32 array of the scores (NumPy format 1.0);
/// - `.npz`: an uncompressed NumPy zip archive with `scores.npy` and `edges.npy`, the edge names as
///   fixed-width unicode (`<U n`, n the longest name);
/// - `.csv`: `edge,sender,receiver,port,score`, one edge a line;
/// - `.json`: EAP-IG's graph JSON (`MIBSubmission.graphJSON`), the circuit's edges marked `in_graph`.
public enum EdgeScoresFile {
    /// The formats, named by their file extensions.
    public enum Format: String, CaseIterable, Sendable {
        case npy, npz, csv, json

        /// The format of `url`'s extension, if it is one of these.
        public init?(of url: URL) { self.init(rawValue: url.pathExtension.lowercased()) }
    }

    /// The file's bytes: `scores` of every edge of `graph` in `format`, with `circuit`'s edges marked in JSON.
    public static func contents(_ scores: [Float], graph: CircuitGraph, dModel: Int, circuit: [Int], format: Format) -> Data {
        precondition(scores.count == graph.edgeCount, "one score per edge")
        switch format {
        case .npy:
            return scoresArray(scores)
        case .npz:
            return zip([("scores.npy", scoresArray(scores)), ("edges.npy", namesArray((0..<graph.edgeCount).map { graph.edge($0).name }))])
        case .csv:
            var text = "edge,sender,receiver,port,score\n"
            for (i, score) in scores.enumerated() {
                let record = Circuit.EdgeRecord(graph.edge(i), score: score)
                text += "\(record.name),\(record.sender),\(record.receiver),\(record.port ?? ""),\(score)\n"
            }
            return Data(text.utf8)
        case .json:
            return MIBSubmission.graphJSON(graph, dModel: dModel, scores: scores, circuit: circuit)
        }
    }

    /// Writes `contents(…)` to `url` atomically, the format chosen by its extension.
    public static func write(_ scores: [Float], graph: CircuitGraph, dModel: Int, circuit: [Int], to url: URL) throws {
        guard let format = Format(of: url) else {
            throw ModelFileError(url.path, "unknown scores format '.\(url.pathExtension)' (\(Format.allCases.map { "." + $0.rawValue }.joined(separator: ", ")))")
        }
        try contents(scores, graph: graph, dModel: dModel, circuit: circuit, format: format).write(to: url, options: .atomic)
    }

    /// A 1-D little-endian float32 `.npy` array.
    static func scoresArray(_ scores: [Float]) -> Data {
        var body = Data(capacity: 4 * scores.count)
        for score in scores { withUnsafeBytes(of: score.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
        return npy(descr: "<f4", count: scores.count, body: body)
    }

    /// A 1-D `.npy` array of fixed-width unicode strings (UTF-32LE, zero-padded to the longest).
    static func namesArray(_ names: [String]) -> Data {
        let width = max(1, names.map(\.unicodeScalars.count).max() ?? 1)
        var body = Data(capacity: 4 * width * names.count)
        for name in names {
            let scalars = name.unicodeScalars.map(\.value) + Array(repeating: 0, count: width - name.unicodeScalars.count)
            for scalar in scalars { withUnsafeBytes(of: scalar.littleEndian) { body.append(contentsOf: $0) } }
        }
        return npy(descr: "<U\(width)", count: names.count, body: body)
    }

    /// NumPy format 1.0: magic, version, header length, a Python dict literal padded with spaces to a
    /// multiple of 64 bytes and ended by a newline, then the data.
    private static func npy(descr: String, count: Int, body: Data) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(count),), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        appendLittleEndian(UInt16(header.utf8.count), to: &out)
        out.append(Data(header.utf8))
        out.append(body)
        return out
    }

    /// A zip archive of `entries` stored without compression, with a fixed date (1980-01-01) so
    /// that the same scores give the same bytes.
    private static func zip(_ entries: [(name: String, data: Data)]) -> Data {
        var out = Data(), directory = Data()
        for entry in entries {
            let name = Data(entry.name.utf8), crc = crc32(entry.data), offset = UInt32(out.count)
            /// The fields the local header and the central directory share: version, flags, method, time, date, CRC, sizes, name length.
            func common(into data: inout Data) {
                for field: UInt16 in [20, 0, 0, 0, 0x21] { appendLittleEndian(field, to: &data) }
                for field in [crc, UInt32(entry.data.count), UInt32(entry.data.count)] { appendLittleEndian(field, to: &data) }
                appendLittleEndian(UInt16(name.count), to: &data)
            }
            appendLittleEndian(UInt32(0x0403_4b50), to: &out)
            common(into: &out)
            appendLittleEndian(UInt16(0), to: &out)  // extra field length
            out.append(name)
            out.append(entry.data)
            appendLittleEndian(UInt32(0x0201_4b50), to: &directory)
            appendLittleEndian(UInt16(20), to: &directory)  // version made by
            common(into: &directory)
            for _ in 0..<4 { appendLittleEndian(UInt16(0), to: &directory) }  // extra, comment, disk, internal attributes
            for field in [UInt32(0), offset] { appendLittleEndian(field, to: &directory) }  // external attributes, offset
            directory.append(name)
        }
        let directoryOffset = UInt32(out.count)
        out.append(directory)
        appendLittleEndian(UInt32(0x0605_4b50), to: &out)
        for field in [0, 0, UInt16(entries.count), UInt16(entries.count)] { appendLittleEndian(field, to: &out) }
        for field in [UInt32(directory.count), directoryOffset] { appendLittleEndian(field, to: &out) }
        appendLittleEndian(UInt16(0), to: &out)  // comment length
        return out
    }

    /// CRC-32 (IEEE 802.3, as zip uses it).
    public static func crc32(_ data: Data) -> UInt32 {
        let table = (0..<256).map { (n: UInt32) -> UInt32 in
            (0..<8).reduce(n) { c, _ in c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~data.reduce(~UInt32(0)) { c, byte in table[Int((c ^ UInt32(byte)) & 0xff)] ^ (c >> 8) }
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
}

import Foundation
import Kernels
import Transformer
import XCTest

/// A reference file written by `Tests/Fixtures/generate_*.py`: float32 tensors in safetensors and
/// integer data as JSON strings in its metadata.
public struct ReferenceFile {
    /// The underlying file.
    public let file: SafetensorsFile

    /// Opens `Tests/Fixtures/reference/<name>.safetensors`.
    public init(_ name: String) throws {
        file = try SafetensorsFile(contentsOf: Fixtures.url("reference/\(name).safetensors"))
    }

    /// Metadata value `key` decoded from JSON.
    public func json<T: Decodable>(_ key: String, as type: T.Type = T.self) throws -> T {
        let text = try XCTUnwrap(file.metadata[key], "reference metadata has no '\(key)'")
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    /// Right-padded token rows cut to each example's length.
    public func batch(_ key: String) throws -> [[Int]] {
        let padded: [[Int]] = try json(key)
        let lengths: [Int] = try json("lengths")
        return zip(padded, lengths).map { Array($0.prefix($1)) }
    }

    /// Tensor `name` as floats.
    public func tensor(_ name: String) throws -> [Float] { try file.floats(name).array }

    /// A padded `[B, Tmax, width]` tensor repacked as `layout`'s `[rows, width]`.
    public func packed(_ name: String, layout: SequenceLayout) throws -> [Float] {
        let shape = try XCTUnwrap(file.shape(of: name), "reference has no tensor '\(name)'")
        let maxLength = shape[1], width = shape[2]
        let padded = try tensor(name)
        var out = [Float](repeating: 0, count: layout.rows * width)
        for b in 0..<layout.count {
            for t in 0..<layout.lengths[b] {
                for i in 0..<width { out[(layout.offsets[b] + t) * width + i] = padded[(b * maxLength + t) * width + i] }
            }
        }
        return out
    }
}

/// Largest |a − b| over two equal-length sequences.
public func maxAbsDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
    precondition(a.count == b.count, "compared sequences differ in length")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Largest |a − b| relative to the largest |b|.
public func relativeError(_ a: [Float], reference b: [Float]) -> Float {
    let scale = b.reduce(0) { max($0, abs($1)) }
    return maxAbsDifference(a, b) / max(scale, .leastNormalMagnitude)
}

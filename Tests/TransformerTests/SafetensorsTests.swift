import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// safetensors parsing against files written by the `safetensors` package
/// (`Tests/Fixtures/safetensors/generate.py`), and the reader's behavior on corrupted files.
final class SafetensorsTests: XCTestCase {
    private var fixtureURL: URL { Fixtures.url("safetensors/types.safetensors") }

    // MARK: - Fixture contents

    func testDirectoryAndMetadata() throws {
        let file = try SafetensorsFile(contentsOf: fixtureURL)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.tensorNames, ["i64", "empty", "f32", "scalar", "bf16", "f16"], "file order")
        let expected: [String: (String, [Int])] = [
            "f32": ("F32", [3, 5]), "f16": ("F16", [2, 7]), "bf16": ("BF16", [4, 3]),
            "scalar": ("F32", []), "empty": ("F32", [0, 4]), "i64": ("I64", [2, 2]),
        ]
        XCTAssertEqual(Set(file.entries.keys), Set(expected.keys))
        for (name, (dtype, shape)) in expected {
            XCTAssertEqual(file.entries[name]?.dtype, dtype, name)
            XCTAssertEqual(file.shape(of: name), shape, name)
        }
        XCTAssertEqual(file.entries["f32"]?.range.count, 60)
        XCTAssertNil(file.shape(of: "absent"))
    }

    func testFloatTensorsMatchNumpyBitForBit() throws {
        let file = try SafetensorsFile(contentsOf: fixtureURL)
        for name in ["f32", "f16", "bf16", "scalar", "empty"] {
            let expected = try Self.expectedBits(name)
            let actual = try file.tensor(name, shape: try XCTUnwrap(file.shape(of: name)))
            XCTAssertEqual((0..<actual.count).map { actual[$0].bitPattern }, expected, name)
        }
        XCTAssertEqual(try file.floats("scalar")[0], 1.5)
    }

    func testShardedSourceReadsEveryShard() throws {
        let directory = Fixtures.url("safetensors/sharded")
        let files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        let source = try ShardedTensorSource(directory: directory, files: files)
        XCTAssertEqual(source.tensorNames, ["layer.0.weight", "layer.1.weight"])
        XCTAssertEqual(source.shape(of: "layer.0.weight"), [2, 3])
        XCTAssertEqual(source.shape(of: "layer.1.weight"), [3])
        for name in source.tensorNames {
            let actual = try source.floats(name)
            XCTAssertEqual((0..<actual.count).map { actual[$0].bitPattern }, try Self.expectedBits(name), name)
        }
        assertModelFileError(directory.path, ["missing tensor 'layer.2.weight'"]) { _ = try source.floats("layer.2.weight") }
        assertModelFileError(directory.appendingPathComponent("model-00003-of-00002.safetensors").path, ["cannot read file"]) {
            _ = try ShardedTensorSource(directory: directory, files: files + ["model-00003-of-00002.safetensors"])
        }
        let types = Fixtures.url("safetensors")
        assertModelFileError(types.appendingPathComponent("types.safetensors").path, ["tensor 'i64' also appears in \(types.appendingPathComponent("types.safetensors").path)"]) {
            _ = try ShardedTensorSource(directory: types, files: ["types.safetensors", "types.safetensors"])
        }
    }

    // MARK: - Errors

    func testUnsupportedDtypeMissingTensorAndWrongShapeThrow() throws {
        let file = try SafetensorsFile(contentsOf: fixtureURL)
        let path = fixtureURL.path
        assertModelFileError(path, ["tensor 'i64' has unsupported dtype I64", "F32, F16, BF16"]) { _ = try file.floats("i64") }
        assertModelFileError(path, ["missing tensor 'wte.weight'"]) { _ = try file.tensor("wte.weight", shape: [3, 5]) }
        assertModelFileError(path, ["tensor 'f32' has shape [3, 5], expected [5, 3]"]) { _ = try file.tensor("f32", shape: [5, 3]) }
        assertModelFileError(path, ["tensor 'scalar' has shape [], expected [1]"]) { _ = try file.tensor("scalar", shape: [1]) }
    }

    func testTruncationsThrowErrorsNamingTheRegion() throws {
        let bytes = try Data(contentsOf: fixtureURL)
        let headerLength = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let cases: [(length: Int, fragments: [String])] = [
            (0, ["truncated", "header length"]),
            (5, ["truncated", "header length"]),
            (8, ["truncated", "header claims \(headerLength) bytes"]),
            (100, ["truncated", "header claims"]),
            (8 + headerLength, ["truncated", "data_offsets", "the data section has 0 bytes"]),
            (bytes.count - 1, ["truncated", "tensor 'f16'", "data_offsets [120, 148]", "the data section has 147 bytes"]),
        ]
        let directory = try makeTemporaryDirectory()
        for (length, fragments) in cases {
            let url = directory.appendingPathComponent("truncated-\(length).safetensors")
            try bytes.prefix(length).write(to: url)
            assertModelFileError(url.path, fragments) { _ = try SafetensorsFile(contentsOf: url) }
        }
        for length in 0..<bytes.count {
            assertModelFileError("cut.safetensors", ["truncated"]) { _ = try SafetensorsFile(data: bytes.prefix(length), path: "cut.safetensors") }
        }
    }

    func testCorruptedHeadersThrowErrorsNamingTheProblem() throws {
        let data = Data(repeating: 0x3F, count: 64)
        let cases: [(String, String, [String])] = [
            ("not-json", #"{"a": "#, ["not valid JSON"]),
            ("garbage", "\u{1}{}", ["not valid JSON"]),
            ("array", "[1, 2]", ["not a JSON object"]),
            ("no-dtype", #"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#, ["tensor 'w' needs dtype"]),
            ("fractional-shape", #"{"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}}"#, ["tensor 'w' needs dtype"]),
            ("three-offsets", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}"#, ["tensor 'w' needs dtype"]),
            ("reversed-offsets", #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#, ["tensor 'w' has data_offsets [8, 4]"]),
            ("negative-offset", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-4, 4]}}"#, ["tensor 'w' has data_offsets [-4, 4]"]),
            ("past-the-end", #"{"w": {"dtype": "F32", "shape": [250], "data_offsets": [0, 1000]}}"#, ["truncated", "tensor 'w'", "data section has 64 bytes"]),
            ("huge-offset", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 9223372036854775807]}}"#, ["truncated", "tensor 'w'"]),
            ("beyond-int64", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e30]}}"#, ["tensor 'w' needs dtype"]),
            ("size-mismatch", #"{"w": {"dtype": "F32", "shape": [3, 5], "data_offsets": [0, 56]}}"#, ["tensor 'w' has 56 bytes, expected 60 for F32 [3, 5]"]),
            ("bf16-mismatch", #"{"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}}"#, ["tensor 'w' has 4 bytes, expected 6 for BF16 [3]"]),
            ("i64-mismatch", #"{"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 12]}}"#, ["tensor 'w' has 12 bytes, expected 16 for I64 [2]"]),
            ("shape-overflow", #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}}"#, ["tensor 'w' has impossible shape"]),
            ("negative-dimension", #"{"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}"#, ["tensor 'w' has impossible shape [-1, 2]"]),
            ("metadata-not-strings", #"{"__metadata__": {"format": 1}}"#, ["__metadata__ is not an object of strings"]),
            ("repeated-name", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "v": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}"#,
             ["tensor 'w' is listed twice"]),
            ("overlap", #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F16", "shape": [4], "data_offsets": [8, 16]}}"#,
             ["tensors 'a' (data_offsets [0, 16]) and 'b' (data_offsets [8, 16]) overlap"]),
        ]
        let directory = try makeTemporaryDirectory()
        for (name, header, fragments) in cases {
            let url = directory.appendingPathComponent("\(name).safetensors")
            try Self.safetensorsBytes(header: header, data: data).write(to: url)
            assertModelFileError(url.path, fragments) { _ = try SafetensorsFile(contentsOf: url) }
        }
        var hugeHeader = Data()
        appendBytes(&hugeHeader, UInt64(1) << 60)
        assertModelFileError("huge.safetensors", ["truncated", "header claims 1152921504606846976 bytes"]) {
            _ = try SafetensorsFile(data: hugeHeader + data, path: "huge.safetensors")
        }
    }

    func testUnknownDtypeIsNamedWhenRead() throws {
        let header = #"{"w": {"dtype": "F4X", "shape": [2], "data_offsets": [0, 1]}, "v": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}"#
        let file = try SafetensorsFile(data: Self.safetensorsBytes(header: header, data: Data([0, 0, 0, 0x3C, 0, 0xC0])), path: "f4.safetensors")
        assertModelFileError("f4.safetensors", ["tensor 'w' has unsupported dtype F4X"]) { _ = try file.floats("w") }
        XCTAssertEqual(try file.floats("v").array, [1, -2])
    }

    func testRandomCorruptionOnlyEverThrowsModelFileError() throws {
        let bytes = try Data(contentsOf: fixtureURL)
        let headerEnd = 8 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var random = SeededRandom(seed: 0x5AFE_7E45)
        var parsed = 0
        for trial in 0..<3000 {
            var corrupted = bytes
            for _ in 0..<(1 + Int(random.next() % 3)) {
                let offset = Int(random.next() % UInt64(headerEnd))
                corrupted[offset] = trial % 2 == 0 ? UInt8(truncatingIfNeeded: random.next()) : corrupted[offset] ^ (1 << (random.next() % 8))
            }
            do {
                let damaged = try SafetensorsFile(data: corrupted, path: "fuzz.safetensors")
                parsed += 1
                for (name, entry) in damaged.entries where ["F32", "F16", "BF16"].contains(entry.dtype) {
                    XCTAssertEqual(try damaged.floats(name).count, entry.shape.reduce(1, *))
                }
            } catch let error as ModelFileError {
                XCTAssertEqual(error.path, "fuzz.safetensors")
            }
        }
        XCTAssertGreaterThan(parsed, 0)
    }

    // MARK: - Helpers

    /// numpy's float32 widening of fixture tensor `name`, as bit patterns.
    private static func expectedBits(_ name: String) throws -> [UInt32] {
        let data = try Data(contentsOf: Fixtures.url("safetensors/expected/\(name).f32"))
        return (0..<(data.count / 4)).map { i in
            UInt32(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) })
        }
    }

    /// A safetensors file with JSON header `header` (not validated) followed by `data`.
    private static func safetensorsBytes(header: String, data: Data) -> Data {
        var bytes = Data()
        appendBytes(&bytes, UInt64(header.utf8.count))
        bytes.append(contentsOf: Array(header.utf8))
        return bytes + data
    }
}

import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// GGUF parsing and dequantization against gguf-py (`Tests/Fixtures/gguf/generate.py`), and the
/// reader's behavior on corrupted files.
final class GGUFTests: XCTestCase {
    private var fixtureURL: URL { Fixtures.url("gguf/types.gguf") }

    private func fixtureBytes() throws -> Data { try Data(contentsOf: fixtureURL) }

    // MARK: - Fixture contents

    func testMetadataOfEveryValueType() throws {
        let file = try GGUFFile(contentsOf: fixtureURL)
        XCTAssertEqual(file.version, 3)
        // The values generate.py wrote.
        let expected: [String: GGUFValue] = [
            "general.architecture": .string("test"),
            "general.alignment": .uint(64),
            "test.uint8": .uint(200),
            "test.int8": .int(-100),
            "test.uint16": .uint(60000),
            "test.int16": .int(-30000),
            "test.uint32": .uint(4_000_000_000),
            "test.int32": .int(-2_000_000_000),
            "test.float32": .float(Double(Float(0.1))),
            "test.uint64": .uint(UInt64.max),
            "test.int64": .int(Int64.min),
            "test.float64": .float(0.1),
            "test.true": .bool(true),
            "test.false": .bool(false),
            "test.string": .string("héllo wörld ✓"),
            "test.empty_string": .string(""),
            "test.strings": .array(["a", "", "Ġthe", "<|im_end|>", "✓✓"].map { .string($0) }),
            "test.int32s": .array([.int(1), .int(-2), .int(2_147_483_647)]),
            "test.uint8s": .array([.uint(0), .uint(255), .uint(7)]),
            "test.int64s": .array([.int(Int64.min), .int(Int64.max)]),
            "test.float32s": .array([.float(0.5), .float(-1.25)]),
            "test.bools": .array([.bool(true), .bool(false), .bool(true)]),
            "test.nested": .array([.array([.int(1), .int(2)]), .array([.int(3)])]),
        ]
        XCTAssertEqual(file.metadata, expected)
        XCTAssertEqual(try file.requireInt("test.uint32"), 4_000_000_000)
        XCTAssertEqual(try file.requireInt("test.int64"), Int(Int64.min))
        XCTAssertNil(file.metadata["test.uint64"]?.intValue, "UInt64.max does not fit in Int")
        XCTAssertEqual(try file.requireDouble("test.float64"), 0.1)
        XCTAssertEqual(try file.requireStrings("test.strings"), ["a", "", "Ġthe", "<|im_end|>", "✓✓"])
        XCTAssertThrowsError(try file.requireStrings("test.int32s"))
        XCTAssertThrowsError(try file.requireInt("test.string"))
    }

    func testTensorDirectory() throws {
        let file = try GGUFFile(contentsOf: fixtureURL)
        let expected: [(String, GGMLType, [Int])] = [
            ("f32", .f32, [3, 37]), ("f32.vector", .f32, [7]), ("f32.cube", .f32, [2, 3, 5]),
            ("f16", .f16, [5, 24]), ("bf16", .bf16, [4, 20]),
            ("q8_0", .q8_0, [3, 96]), ("q4_0", .q4_0, [4, 64]), ("q4_1", .q4_1, [5, 32]),
            ("q8_0.random", .q8_0, [2, 64]), ("q4_0.random", .q4_0, [3, 32]), ("q4_1.random", .q4_1, [2, 96]),
            ("q4_k.random", .q4_K, [3, 512]), ("q5_k.random", .q5_K, [3, 512]), ("q6_k.random", .q6_K, [3, 512]),
            ("q6_k.cube", .q6_K, [2, 2, 256]),
        ]
        XCTAssertEqual(file.tensorNames, expected.map(\.0))
        for (name, type, shape) in expected {
            let info = try XCTUnwrap(file.info(name))
            XCTAssertEqual(info.type, type, name)
            XCTAssertEqual(info.shape, shape, name)
            XCTAssertEqual(file.shape(of: name), shape, name)
            XCTAssertEqual(info.dimensions, shape.reversed(), name)
            XCTAssertEqual(info.fileOffset % 64, 0, "\(name) is not aligned to general.alignment")
        }
        XCTAssertEqual(Set(file.tensors.compactMap(\.type)), Set(GGMLType.allCases), "the fixture covers every type")
        XCTAssertNil(file.shape(of: "absent"))
        XCTAssertFalse(file.contains("absent"))
    }

    func testDequantizationMatchesGGUFPyBitForBit() throws {
        let file = try GGUFFile(contentsOf: fixtureURL)
        for info in file.tensors {
            let expected = try Self.expectedBits(info.name)
            let actual = try file.tensor(info.name, shape: info.shape)
            XCTAssertEqual(actual.count, expected.count, info.name)
            let mismatches = (0..<min(actual.count, expected.count)).filter { actual[$0].bitPattern != expected[$0] }
            if let first = mismatches.first {
                XCTFail("\(info.name): \(mismatches.count) values differ from gguf-py, first at \(first): "
                    + "\(actual[first]) (0x\(String(actual[first].bitPattern, radix: 16))) vs "
                    + "\(Float(bitPattern: expected[first])) (0x\(String(expected[first], radix: 16)))")
            }
        }
    }

    func testLargeConversionsSplitAcrossThreadsGiveTheSameBits() throws {
        // Each fixture tensor repeated until it is large enough for `dequantize` to split it
        // across worker threads must still give gguf-py's values, repeated.
        let file = try GGUFFile(contentsOf: fixtureURL)
        let bytes = try fixtureBytes()
        for info in file.tensors {
            let type = try XCTUnwrap(info.type)
            let expected = try Self.expectedBits(info.name)
            let tensorBytes = bytes.subdata(in: info.fileOffset..<(info.fileOffset + info.elementCount / type.blockSize * type.bytesPerBlock))
            let copies = (1 << 18) / info.elementCount + 1
            let tiled = (0..<copies).reduce(into: Data()) { data, _ in data.append(tensorBytes) }
            let out = FloatBuffer(count: copies * info.elementCount)
            tiled.withUnsafeBytes { type.dequantize(out.pointer, $0.baseAddress!, out.count) }
            let mismatches = (0..<out.count).filter { out[$0].bitPattern != expected[$0 % expected.count] }.count
            XCTAssertEqual(mismatches, 0, "\(info.name) × \(copies)")
        }
    }

    func testVersion2ParsesLikeVersion3() throws {
        var bytes = try fixtureBytes()
        patchBytes(&bytes, at: 4, UInt32(2))
        let v2 = try GGUFFile(data: bytes, path: "v2.gguf")
        let v3 = try GGUFFile(contentsOf: fixtureURL)
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(v2.metadata, v3.metadata)
        XCTAssertEqual(v2.tensors.map(\.fileOffset), v3.tensors.map(\.fileOffset))
        XCTAssertEqual(try v2.floats("q6_k.random")[777].bitPattern, try v3.floats("q6_k.random")[777].bitPattern)
    }

    // MARK: - Corrupted files

    func testTruncationsThrowErrorsNamingTheRegion() throws {
        let bytes = try fixtureBytes()
        let file = try GGUFFile(contentsOf: fixtureURL)
        let firstTensorEntry = try Self.offset(ofString: "f32", in: bytes) - 11
        let stringValue = try Self.offset(ofString: "test.string", in: bytes) + 4
        let lastTensor = try XCTUnwrap(file.tensors.last)
        let cases: [(length: Int, fragments: [String])] = [
            (0, ["truncated", "magic"]),
            (2, ["truncated", "magic"]),
            (6, ["truncated", "version"]),
            (12, ["truncated", "tensor count"]),
            (20, ["truncated", "metadata count"]),
            (24, ["truncated", "cannot fit in a file of 24 bytes"]),
            (30, ["truncated", "cannot fit in a file of 30 bytes"]),
            (stringValue + 3, ["truncated", "test.string"]),
            (stringValue + 12, ["truncated", "test.string"]),
            (firstTensorEntry + 5, ["truncated", "length of name of tensor #0"]),
            (firstTensorEntry + 9, ["truncated", "name of tensor #0", "claims 3 bytes"]),
            (firstTensorEntry + 13, ["truncated", "dimension count of tensor 'f32'"]),
            (firstTensorEntry + 20, ["truncated", "dimensions of tensor 'f32'"]),
            (firstTensorEntry + 33, ["truncated", "type of tensor 'f32'"]),
            (firstTensorEntry + 40, ["truncated", "data offset of tensor 'f32'"]),
            (file.tensors[0].fileOffset - 1, ["truncated", "tensor 'f32'"]),
            (file.tensors[0].fileOffset + 100, ["truncated", "tensor 'f32'", "needs bytes up to"]),
            (lastTensor.fileOffset + 1, ["truncated", "tensor 'q6_k.cube'"]),
        ]
        let directory = try makeTemporaryDirectory()
        for (length, fragments) in cases {
            let url = directory.appendingPathComponent("truncated-\(length).gguf")
            try bytes.prefix(length).write(to: url)
            assertModelFileError(url.path, fragments) { _ = try GGUFFile(contentsOf: url) }
        }
    }

    func testEveryTruncationBeforeTheLastTensorEndThrows() throws {
        let bytes = try fixtureBytes()
        let file = try GGUFFile(contentsOf: fixtureURL)
        let dataEnd = file.tensors.map { $0.fileOffset + $0.elementCount / $0.type!.blockSize * $0.type!.bytesPerBlock }.max()!
        for length in 0..<bytes.count {
            do {
                _ = try GGUFFile(data: bytes.prefix(length), path: "cut.gguf")
                XCTAssertGreaterThanOrEqual(length, dataEnd, "a file cut to \(length) bytes parsed")
            } catch let error as ModelFileError {
                XCTAssertLessThan(length, dataEnd, "a file cut to \(length) bytes (after all tensor data) failed: \(error)")
                XCTAssertEqual(error.path, "cut.gguf")
            }
        }
    }

    func testBadMagicAndUnsupportedVersions() throws {
        let bytes = try fixtureBytes()
        let directory = try makeTemporaryDirectory()
        var badMagic = bytes
        badMagic[3] = UInt8(ascii: "X")
        var safetensors = Data()
        appendBytes(&safetensors, UInt64(2))
        safetensors.append(contentsOf: Array("{}".utf8))
        var version1 = bytes
        patchBytes(&version1, at: 4, UInt32(1))
        var version4 = bytes
        patchBytes(&version4, at: 4, UInt32(4))
        var bigEndian = bytes
        patchBytes(&bigEndian, at: 4, UInt32(3).byteSwapped)
        let cases: [(String, Data, [String])] = [
            ("bad-magic.gguf", badMagic, ["not a GGUF file", "bad magic"]),
            ("model.safetensors", safetensors, ["not a GGUF file"]),
            ("v1.gguf", version1, ["unsupported GGUF version 1"]),
            ("v4.gguf", version4, ["unsupported GGUF version 4"]),
            ("big-endian.gguf", bigEndian, ["big-endian"]),
        ]
        for (name, data, fragments) in cases {
            let url = directory.appendingPathComponent(name)
            try data.write(to: url)
            assertModelFileError(url.path, fragments) { _ = try GGUFFile(contentsOf: url) }
        }
        assertModelFileError(directory.appendingPathComponent("absent.gguf").path, ["cannot read file"]) {
            _ = try GGUFFile(contentsOf: directory.appendingPathComponent("absent.gguf"))
        }
    }

    func testUnsupportedTensorTypeIsNamedWhenRead() throws {
        let bytes = try fixtureBytes()
        let directory = try makeTemporaryDirectory()
        for (id, label) in [(UInt32(7), "unsupported type 7 (Q5_1)"), (99, "unsupported type 99 (unknown)")] {
            var patched = bytes
            patchBytes(&patched, at: try Self.tensorTypeOffset("q4_1", dimensions: 2, in: bytes), id)
            let url = directory.appendingPathComponent("type-\(id).gguf")
            try patched.write(to: url)
            let file = try GGUFFile(contentsOf: url)
            XCTAssertEqual(file.info("q4_1")?.typeID, id)
            XCTAssertNil(file.info("q4_1")?.type)
            assertModelFileError(url.path, ["tensor 'q4_1'", label]) { _ = try file.floats("q4_1") }
            assertModelFileError(url.path, ["tensor 'q4_1'", label]) { _ = try file.tensor("q4_1", shape: [5, 32]) }
            XCTAssertEqual(try file.floats("q4_0").count, 256, "other tensors stay readable")
        }
    }

    func testAbsurdCountsAndLengthsThrow() throws {
        let bytes = try fixtureBytes()
        let keyLength = try Self.offset(ofString: "test.uint8", in: bytes) - 18
        let stringLength = try Self.offset(ofString: "test.string", in: bytes) + 4
        let arrayCount = try Self.offset(ofString: "test.strings", in: bytes) + 8
        let arrayType = try Self.offset(ofString: "test.int32s", in: bytes) + 4
        let valueType = try Self.offset(ofString: "test.uint8", in: bytes)
        let alignment = try Self.offset(ofString: "general.alignment", in: bytes) + 4
        let nameLength = try Self.offset(ofString: "f16", in: bytes) - 11
        let dimensionCount = try Self.offset(ofString: "f16", in: bytes)
        let firstDimension = dimensionCount + 4
        let dataOffset = try Self.tensorTypeOffset("f16", dimensions: 2, in: bytes) + 4
        let dataStart = try GGUFFile(contentsOf: fixtureURL).tensors[0].fileOffset
        let lastAlignedOffset = (bytes.count - dataStart - 100) / 64 * 64  // f16 (240 bytes) runs past the end
        let cases: [(String, [(Int, any FixedWidthInteger)], [String])] = [
            ("tensor-count", [(8, UInt64(1) << 60)], ["corrupted header", "1152921504606846976 tensors"]),
            ("metadata-count", [(16, UInt64.max)], ["corrupted header", "metadata entries"]),
            ("tensor-count-just-too-big", [(8, UInt64(bytes.count / 24))], ["corrupted header", "\(bytes.count / 24) tensors"]),
            ("key-length", [(keyLength, UInt64(1) << 62)], ["metadata key #2", "claims 4611686018427387904 bytes"]),
            ("string-length", [(stringLength, UInt64(100_000))], ["metadata 'test.string'", "claims 100000 bytes"]),
            ("array-count", [(arrayCount, UInt64.max)], ["metadata 'test.strings'", "claims 18446744073709551615 elements"]),
            ("array-type", [(arrayType, UInt32(13))], ["metadata 'test.int32s'", "unknown value type 13"]),
            ("value-type", [(valueType, UInt32(1000))], ["metadata 'test.uint8'", "unknown value type 1000"]),
            ("alignment-zero", [(alignment, UInt32(0))], ["general.alignment is 0"]),
            ("alignment-odd", [(alignment, UInt32(48))], ["general.alignment is 48"]),
            ("name-length", [(nameLength, UInt64(1) << 40)], ["name of tensor #3", "claims 1099511627776 bytes"]),
            ("dimension-count", [(dimensionCount, UInt32(5))], ["tensor 'f16' has 5 dimensions"]),
            ("dimension", [(firstDimension, UInt64.max)], ["tensor 'f16'", "absurd dimensions"]),
            ("dimension-overflow", [(firstDimension, UInt64(1) << 40), (firstDimension + 8, UInt64(1) << 40)], ["tensor 'f16'", "absurd dimensions"]),
            ("data-offset", [(dataOffset, UInt64.max - 63)], ["tensor 'f16'", "past the end of the file"]),
            ("data-offset-near-end", [(dataOffset, UInt64(lastAlignedOffset))], ["tensor 'f16'", "needs bytes up to"]),
            ("data-offset-misaligned", [(dataOffset, UInt64(640 + 2))], ["tensor 'f16'", "not a multiple of the alignment 64"]),
            ("rows", [(try Self.offset(ofString: "q8_0", in: bytes) + 4, UInt64(48)), (try Self.offset(ofString: "q8_0", in: bytes) + 12, UInt64(6))],
             ["tensor 'q8_0'", "rows of 48 elements", "Q8_0 block size 32"]),
        ]
        let directory = try makeTemporaryDirectory()
        for (name, patches, fragments) in cases {
            var patched = bytes
            for (offset, value) in patches { patchBytes(&patched, at: offset, value) }
            let url = directory.appendingPathComponent("\(name).gguf")
            try patched.write(to: url)
            assertModelFileError(url.path, fragments) { _ = try GGUFFile(contentsOf: url) }
        }
    }

    func testDuplicateNamesThrow() throws {
        let bytes = try fixtureBytes()
        var duplicateTensor = bytes
        let q4_1 = try Self.offset(ofString: "q4_1", in: bytes)
        duplicateTensor.replaceSubrange((q4_1 - 4)..<q4_1, with: Array("q4_0".utf8))
        var duplicateKey = bytes
        let trueKey = try Self.offset(ofString: "test.true", in: bytes)
        duplicateKey.replaceSubrange((trueKey - 9)..<trueKey, with: Array("test.int8".utf8))
        assertModelFileError("dup.gguf", ["duplicate tensor 'q4_0'"]) { _ = try GGUFFile(data: duplicateTensor, path: "dup.gguf") }
        assertModelFileError("dup.gguf", ["duplicate metadata key 'test.int8'"]) { _ = try GGUFFile(data: duplicateKey, path: "dup.gguf") }
    }

    func testMissingTensorAndWrongShapeThrow() throws {
        let file = try GGUFFile(contentsOf: fixtureURL)
        let path = fixtureURL.path
        assertModelFileError(path, ["missing tensor 'blk.0.attn_q.weight'"]) { _ = try file.floats("blk.0.attn_q.weight") }
        assertModelFileError(path, ["missing tensor 'nope'"]) { _ = try file.tensor("nope", shape: [1]) }
        assertModelFileError(path, ["tensor 'q4_1' has shape [5, 32], expected [32, 5]"]) { _ = try file.tensor("q4_1", shape: [32, 5]) }
        assertModelFileError(path, ["tensor 'f32.cube' has shape [2, 3, 5], expected [6, 5]"]) { _ = try file.tensor("f32.cube", shape: [6, 5]) }
        assertModelFileError(path, ["missing or non-integer metadata 'llama.block_count'"]) { _ = try file.requireInt("llama.block_count") }
    }

    func testRandomCorruptionOnlyEverThrowsModelFileError() throws {
        // Flip random bytes of the header and directory; every variant must parse or throw a
        // ModelFileError, and whatever parses must read without crashing.
        let bytes = try fixtureBytes()
        let file = try GGUFFile(contentsOf: fixtureURL)
        let headerEnd = file.tensors[0].fileOffset
        var random = SeededRandom(seed: 0x6767_7566)
        var parsed = 0
        for trial in 0..<3000 {
            var corrupted = bytes
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let offset = Int(random.next() % UInt64(headerEnd))
                corrupted[offset] = trial % 2 == 0 ? UInt8(truncatingIfNeeded: random.next()) : corrupted[offset] ^ (1 << (random.next() % 8))
            }
            do {
                let damaged = try GGUFFile(data: corrupted, path: "fuzz.gguf")
                parsed += 1
                for info in damaged.tensors where info.type != nil {
                    XCTAssertEqual(try damaged.floats(info.name).count, info.elementCount)
                }
            } catch let error as ModelFileError {
                XCTAssertEqual(error.path, "fuzz.gguf")
            }
        }
        XCTAssertGreaterThan(parsed, 0, "some flips (inside strings or values) leave the file valid")
    }

    // MARK: - The real model

    func testSmolLM2MetadataAndTensorTypes() throws {
        let file = try GGUFFile(contentsOf: try Fixtures.smolLM2())
        let expected = try Self.smolLM2Expectations()
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(try file.requireInt("llama.block_count"), 30)
        XCTAssertEqual(try file.requireInt("llama.embedding_length"), 576)
        XCTAssertEqual(try file.requireInt("llama.attention.head_count"), 9)
        XCTAssertEqual(try file.requireInt("llama.attention.head_count_kv"), 3)
        XCTAssertEqual(try file.requireStrings("tokenizer.ggml.tokens").count, 49152)
        XCTAssertEqual(file.metadata["tokenizer.ggml.pre"]?.stringValue, "smollm")
        XCTAssertEqual(try file.requireDouble("llama.rope.freq_base"), 100000)
        XCTAssertEqual(file.tensorNames, expected.tensors.map(\.name))
        for tensor in expected.tensors {
            let info = try XCTUnwrap(file.info(tensor.name))
            XCTAssertEqual(info.type?.name, tensor.type, tensor.name)
            XCTAssertEqual(info.shape, tensor.shape, tensor.name)
        }
        let counts = Dictionary(grouping: file.tensors, by: { $0.type?.name ?? "?" }).mapValues(\.count)
        XCTAssertEqual(counts, ["Q4_1": 210, "F32": 61, "Q8_0": 1])
    }

    func testSmolLM2DequantizesEveryTensorLikeGGUFPy() throws {
        let url = try Fixtures.smolLM2()
        let expected = try Self.smolLM2Expectations()
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int
        XCTAssertEqual(size, expected.size, "the cached model is not the file generate.py read")
        let clock = ContinuousClock()
        let parseStart = clock.now
        let file = try GGUFFile(contentsOf: url)
        let parseTime = clock.now - parseStart
        var dequantizeTime = Duration.zero
        var values = 0
        for tensor in expected.tensors {
            let start = clock.now
            let floats = try file.floats(tensor.name)
            dequantizeTime += clock.now - start
            values += floats.count
            var bitSum: UInt64 = 0, sum = 0.0, sumOfMagnitudes = 0.0
            for i in 0..<floats.count {
                bitSum &+= UInt64(floats[i].bitPattern)
                sum += Double(floats[i])
                sumOfMagnitudes += Double(abs(floats[i]))
            }
            XCTAssertEqual(bitSum, tensor.bitSum, "\(tensor.name): bit patterns differ from gguf-py")
            XCTAssertEqual(sum, tensor.sum, accuracy: 1e-9 * sumOfMagnitudes, tensor.name)
            if let first = tensor.firstBits, let last = tensor.lastBits {
                XCTAssertEqual((0..<64).map { floats[$0].bitPattern }, first, "\(tensor.name): first 64 values")
                XCTAssertEqual(((floats.count - 64)..<floats.count).map { floats[$0].bitPattern }, last, "\(tensor.name): last 64 values")
            }
        }
        XCTAssertEqual(values, 134_515_008)
        print(String(format: "SmolLM2 Q4_1 GGUF: parsed in %.1f ms, dequantized %d tensors (%d values) in %.1f ms on %d threads",
                     parseTime.milliseconds, expected.tensors.count, values, dequantizeTime.milliseconds, Threading.workerCount))
    }

    // MARK: - Helpers

    /// generate.py's gguf-py results for the real model.
    private struct ModelExpectations: Decodable {
        struct Tensor: Decodable {
            let name: String
            let type: String
            let shape: [Int]
            let bitSum: UInt64
            let sum: Double
            let firstBits: [UInt32]?
            let lastBits: [UInt32]?
        }
        let size: Int
        let tensors: [Tensor]
    }

    private static func smolLM2Expectations() throws -> ModelExpectations {
        try JSONDecoder().decode(ModelExpectations.self, from: Data(contentsOf: Fixtures.url("gguf/smollm2-expected.json")))
    }

    /// gguf-py's dequantization of fixture tensor `name`, as float32 bit patterns.
    private static func expectedBits(_ name: String) throws -> [UInt32] {
        let data = try Data(contentsOf: Fixtures.url("gguf/expected/\(name).f32"))
        return (0..<(data.count / 4)).map { i in
            UInt32(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) })
        }
    }

    /// The offset just past the first GGUF string (UInt64 length + UTF-8) equal to `text`.
    private static func offset(ofString text: String, in data: Data) throws -> Int {
        var needle = Data()
        appendBytes(&needle, UInt64(text.utf8.count))
        needle.append(contentsOf: Array(text.utf8))
        let range = try XCTUnwrap(data.range(of: needle), "string '\(text)' not in the fixture")
        return range.upperBound
    }

    /// The offset of the type field of tensor `name`'s directory entry.
    private static func tensorTypeOffset(_ name: String, dimensions: Int, in data: Data) throws -> Int {
        try offset(ofString: name, in: data) + 4 + 8 * dimensions
    }
}

// MARK: - Helpers shared with SafetensorsTests

/// Appends `value` little-endian.
func appendBytes(_ data: inout Data, _ value: some FixedWidthInteger) {
    withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
}

/// Overwrites the bytes at `offset` with `value` little-endian.
func patchBytes(_ data: inout Data, at offset: Int, _ value: some FixedWidthInteger) {
    var bytes = Data()
    appendBytes(&bytes, value)
    data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
}

/// Asserts that `body` throws a `ModelFileError` for `path` whose problem mentions every fragment.
func assertModelFileError(_ path: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                          _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("\(path): no error, expected one mentioning \(fragments)", file: file, line: line)
    } catch let error as ModelFileError {
        XCTAssertEqual(error.path, path, file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix("\(path): "), file: file, line: line)
        for fragment in fragments where !error.problem.contains(fragment) {
            XCTFail("error '\(error)' does not mention '\(fragment)'", file: file, line: line)
        }
    } catch {
        XCTFail("\(path): expected a ModelFileError, got \(error)", file: file, line: line)
    }
}

extension XCTestCase {
    /// A fresh empty directory, removed when the test ends.
    func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuitkit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

extension Duration {
    /// The duration in milliseconds.
    fileprivate var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e3 + Double(attoseconds) * 1e-15
    }
}

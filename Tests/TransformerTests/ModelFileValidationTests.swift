import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// Bad values in model files (found by fuzzing) are refused at load with the file, the field and
/// its value, instead of trapping, exhausting memory or giving NaN logits.
final class ModelFileValidationTests: XCTestCase {
    private var tinyGGUF: URL { Fixtures.url("tiny-llama-gguf/tiny-llama.gguf") }

    /// Writes the tiny Llama GGUF with metadata `changes` and returns its path.
    private func tinyGGUF(_ name: String, _ changes: [String: GGUFValue?]) throws -> URL {
        let url = try makeTemporaryDirectory().appendingPathComponent("\(name).gguf")
        try ggufBytes(rewriting: tinyGGUF, changes).write(to: url)
        return url
    }

    /// A copy of tiny HF model directory `fixture` whose `config.json` has `edit` applied.
    private func tinyDirectory(_ fixture: String, _ edit: (inout String) -> Void) throws -> URL {
        let directory = try makeTemporaryDirectory().appendingPathComponent(fixture)
        try FileManager.default.copyItem(at: Fixtures.url(fixture), to: directory)
        let config = directory.appendingPathComponent("config.json")
        var text = try String(contentsOf: config, encoding: .utf8)
        edit(&text)
        try text.write(to: config, atomically: true, encoding: .utf8)
        return directory
    }

    /// Replaces `field`'s value (up to the next comma or line end) with `value` in a config.json text.
    private func setting(_ field: String, to value: String) -> (inout String) -> Void {
        { text in
            let range = text.range(of: "\"\(field)\": [^,\n]*", options: .regularExpression)!
            text.replaceSubrange(range, with: "\"\(field)\": \(value)")
        }
    }

    func testRewrittenTinyGGUFStillLoads() throws {
        let model = try TransformerModel.load(contentsOf: try tinyGGUF("same", [:]))
        XCTAssertEqual(model.config, try TransformerModel.load(contentsOf: tinyGGUF).config)
    }

    func testHugeContextLengthLoadsAndRunsWithoutAHugeRoPETable() throws {
        let url = try tinyGGUF("context", ["llama.context_length": .uint(1 << 62)])
        let model = try TransformerModel.load(contentsOf: url)
        XCTAssertEqual(model.config.contextLength, 1 << 62)
        let reference = try TransformerModel.load(contentsOf: tinyGGUF)
        let batch = RandomModel.batch(lengths: [7, 3], vocab: model.config.vocabularySize, seed: 17)
        XCTAssertEqual(try model.forward(batch).logits.array, try reference.forward(batch).logits.array)
    }

    /// A NaN or an absurdly large value in a weight (a corrupt file) is refused at load, naming the tensor,
    /// instead of giving NaN logits.
    func testNaNWeightsAreRefused() throws {
        let directory = try tinyDirectory("tiny-gpt2") { _ in }
        let url = directory.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<8 + headerLength)) as? [String: Any])
        let name = try XCTUnwrap(header.keys.sorted().first { $0.hasSuffix("h.0.ln_1.weight") })
        let start = try XCTUnwrap(((header[name] as? [String: Any])?["data_offsets"] as? [Int])?.first) + 8 + headerLength
        bytes.replaceSubrange(start + 4..<start + 8, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) })
        try bytes.write(to: url)
        assertModelFileError(url.path, ["tensor '\(name)' holds nan at element 1", "the weights are corrupt"]) {
            _ = try TransformerModel.load(contentsOf: directory)
        }
        // A finite value no trained model has (random bytes often decode to one) overflows the run just the same.
        bytes.replaceSubrange(start + 4..<start + 8, with: withUnsafeBytes(of: Float(1e30).bitPattern.littleEndian) { Data($0) })
        try bytes.write(to: url)
        assertModelFileError(url.path, ["tensor '\(name)' holds 1e+30 at element 1", "the weights are corrupt"]) {
            _ = try TransformerModel.load(contentsOf: directory)
        }
    }

    func testHeadCountsWhoseWidthOverflowsAreRefused() throws {
        let url = try tinyGGUF("heads", ["llama.attention.head_count": .uint(UInt64(UInt32.max)),
                                         "llama.attention.head_count_kv": .uint(UInt64(UInt32.max))])
        assertModelFileError(url.path, ["llama.attention.head_count is 4294967295", "expected an integer from 1 to 4096"]) {
            _ = try TransformerModel.load(contentsOf: url)
        }
    }

    func testNonsenseEpsilonAndRopeBaseAreRefused() throws {
        let cases: [(String, GGUFValue, String)] = [
            ("llama.attention.layer_norm_rms_epsilon", .float(.nan), "nan"),
            ("llama.attention.layer_norm_rms_epsilon", .float(-1), "-1.0"),
            ("llama.rope.freq_base", .float(.nan), "nan"),
            ("llama.rope.freq_base", .float(0), "0.0"),
            ("llama.rope.freq_base", .float(-1), "-1.0"),
            ("llama.rope.freq_base", .string("fast"), "'fast'"),
        ]
        for (i, (key, value, shown)) in cases.enumerated() {
            let url = try tinyGGUF("float-\(i)", [key: value])
            assertModelFileError(url.path, ["\(key) is \(shown)"]) { _ = try TransformerModel.load(contentsOf: url) }
        }
        let directory = try tinyDirectory("tiny-llama", setting("rms_norm_eps", to: "-1"))
        assertModelFileError(directory.appendingPathComponent("config.json").path, ["rms_norm_eps is -1.0", "positive finite"]) {
            _ = try TransformerModel.load(contentsOf: directory)
        }
    }

    func testGPT2EmbeddingWidthWhoseMLPWidthOverflowsIsRefused() throws {
        let directory = try tinyDirectory("tiny-gpt2", setting("n_embd", to: "\(1 << 62)"))
        assertModelFileError(directory.appendingPathComponent("config.json").path, ["n_embd is \(1 << 62)", "from 1 to 131072"]) {
            _ = try TransformerModel.load(contentsOf: directory)
        }
    }

    func testWeightsLargerThanMemoryAreRefusedWithTheEstimate() throws {
        let directory = try tinyDirectory("tiny-gpt2") { text in
            self.setting("n_embd", to: "65536")(&text)
            self.setting("n_layer", to: "4096")(&text)
        }
        assertModelFileError(directory.appendingPathComponent("config.json").path, ["needs about 844425.1 GB", "of memory"]) {
            _ = try TransformerModel.load(contentsOf: directory)
        }
    }

    func testFractionalOrHugeIntegersInConfigNameTheField() throws {
        for value in ["1.5", "9223372036854775808"] {
            let directory = try tinyDirectory("tiny-gpt2", setting("n_layer", to: value))
            assertModelFileError(directory.appendingPathComponent("config.json").path, ["n_layer is \(value); expected an integer"]) {
                _ = try TransformerModel.load(contentsOf: directory)
            }
        }
    }

    func testTokenizerLargerThanTheVocabularyIsRefused() throws {
        let file = try GGUFFile(contentsOf: tinyGGUF)
        let tokens = try file.requireStrings("tokenizer.ggml.tokens")
        let extra = (0..<1000).map { "extra\($0)" }
        let url = try tinyGGUF("tokens", [
            "tokenizer.ggml.tokens": .array((tokens + extra).map { .string($0) }),
            "tokenizer.ggml.token_type": nil,
        ])
        assertModelFileError(url.path, ["tokenizer has \(tokens.count + 1000) tokens", "more than llama.vocab_size \(tokens.count)"]) {
            _ = try TransformerModel.load(contentsOf: url)
        }
    }

    func testCorruptStringsAreShownAsShortPrintableExcerpts() throws {
        let binary = String(decoding: (0..<72_000).map { UInt8(truncatingIfNeeded: $0 &* 37) }, as: UTF8.self)
        let url = try tinyGGUF("binary", ["general.architecture": .string(binary)])
        do {
            _ = try TransformerModel.load(contentsOf: url)
            XCTFail("loaded a file whose architecture is binary")
        } catch let error as ModelFileError {
            XCTAssert(error.problem.hasPrefix("unsupported GGUF architecture '"), error.problem)
            XCTAssert(error.problem.contains("…' (\(binary.utf8.count) bytes)"), error.problem)
            XCTAssertLessThan(error.description.count, 400)
            XCTAssertFalse(error.description.unicodeScalars.contains { $0.properties.generalCategory == .control }, error.description)
        }
    }

    func testDirectoriesAndSpecialFilesAreRefusedInPlainWords() throws {
        let directory = try makeTemporaryDirectory()
        assertModelFileError(directory.path, ["is a directory, not a model file"]) { _ = try GGUFFile(contentsOf: directory) }
        let fifo = directory.appendingPathComponent("pipe.gguf")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        assertModelFileError(fifo.path, ["not a regular file", "FIFO"]) { _ = try TransformerModel.load(contentsOf: fifo) }
        let device = URL(fileURLWithPath: "/dev/zero")
        assertModelFileError(device.path, ["is a device, not a model file"]) { _ = try SafetensorsFile(contentsOf: device) }
    }

    func testUnreadableFilesAreRefusedInPlainWords() throws {
        let locked = try makeTemporaryDirectory().appendingPathComponent("locked.gguf")
        try Data(contentsOf: tinyGGUF).write(to: locked)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
        try XCTSkipIf(FileManager.default.isReadableFile(atPath: locked.path), "running as root: every file is readable")
        assertModelFileError(locked.path, ["cannot read file: permission denied"]) { _ = try TransformerModel.load(contentsOf: locked) }
    }
}

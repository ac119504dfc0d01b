import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// Forward passes against HF transformers (logits) and the PyTorch reference (sender outputs).
final class ForwardReferenceTests: XCTestCase {
    private func checkTinyModel(_ name: String, _ model: TransformerModel) throws {
        let reference = try ReferenceFile(name)
        for run in ["clean", "corrupt"] {
            let batch = try reference.batch("\(run)_tokens")
            let pass = try model.forward(batch, readout: .all, captureSenders: run == "clean")
            let expected = try reference.packed("logits.\(run)", layout: pass.layout)
            let error = maxAbsDifference(pass.logits.array, expected)
            XCTAssertLessThanOrEqual(error, 1e-4, "\(name) \(run) logits differ from HF by \(error)")
            if let senders = pass.senders {
                let c = model.config, plane = pass.layout.rows * c.dModel
                let names = try reference.json("senders", as: [String].self)
                XCTAssertEqual(names, model.graph.senders.map(\.name))
                for s in model.graph.senders {
                    let start = model.graph.index(of: s) * plane
                    let ours = Array(UnsafeBufferPointer(start: senders.pointer + start, count: plane))
                    let error = maxAbsDifference(ours, try reference.packed("sender.\(s.name)", layout: pass.layout))
                    XCTAssertLessThanOrEqual(error, 1e-4, "\(name) sender \(s.name) differs by \(error)")
                }
            }
        }
    }

    func testTinyGPT2MatchesHF() throws {
        try checkTinyModel("tiny-gpt2", TransformerModel.load(contentsOf: Fixtures.url("tiny-gpt2")))
    }

    func testTinyLlamaMatchesHF() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.url("tiny-llama"))
        XCTAssertEqual(model.config.kvHeads, 2)
        XCTAssertEqual(model.config.positions, .rotary(style: .halfSplit, base: 10000))
        try checkTinyModel("tiny-llama", model)
    }

    func testTinyLlamaGGUFMatchesHF() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.url("tiny-llama-gguf/tiny-llama.gguf"))
        XCTAssertEqual(model.config.positions, .rotary(style: .interleaved, base: 10000))
        XCTAssertNotNil(model.tokenizer)
        try checkTinyModel("tiny-llama-gguf", model)
    }

    /// Padding-free packing: running examples together equals running each alone.
    func testBatchEqualsSingleRuns() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.url("tiny-llama"))
        let batch = RandomModel.batch(lengths: [9, 1, 5, 12], vocab: model.config.vocabularySize, seed: 4)
        let together = try model.forward(batch).logits.array
        let vocab = model.config.vocabularySize
        for (b, sequence) in batch.enumerated() {
            let alone = try model.forward([sequence]).logits.array
            XCTAssertLessThanOrEqual(maxAbsDifference(alone, together[(b * vocab)..<((b + 1) * vocab)]), 1e-5)
        }
    }

    func testSmolLM2LastLogitsMatchHF() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.smolLM2())
        let reference = try ReferenceFile("smollm2")
        let prompts: [String] = try reference.json("prompts")
        let tokens: [[Int]] = try reference.json("prompt_tokens")
        let expected = try reference.tensor("last_logits")
        let vocab = model.config.vocabularySize
        XCTAssertGreaterThanOrEqual(prompts.count, 8)
        let tokenizer = try XCTUnwrap(model.tokenizer)
        for (i, prompt) in prompts.enumerated() {
            XCTAssertEqual(tokenizer.encode(prompt), tokens[i], "tokens of prompt \(i)")
            let ours = try model.forward([tokens[i]]).logits.array
            let theirs = Array(expected[(i * vocab)..<((i + 1) * vocab)])
            let error = maxAbsDifference(ours, theirs)
            XCTAssertLessThanOrEqual(error, 2e-3, "prompt \(i) (\(prompt.prefix(40))…): max |Δ| \(error)")
            func top5(_ x: [Float]) -> [Int] { Array(x.indices.sorted { x[$0] > x[$1] }.prefix(5)) }
            XCTAssertEqual(top5(ours), top5(theirs), "prompt \(i) top-5")
        }
    }

    func testSmolLM2PutsMaryFirst() throws {
        let model = try TransformerModel.load(contentsOf: Fixtures.smolLM2())
        let tokens = try XCTUnwrap(model.tokenizer).encode("When Mary and John went to the store, John gave a drink to")
        XCTAssertEqual(tokens, [2427, 5099, 284, 2322, 3514, 288, 260, 4249, 28, 2322, 4502, 253, 5968, 288])
        let logits = try model.forward([tokens]).logits.array
        XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, 5099)
        XCTAssertEqual(logits[5099], 11.0370, accuracy: 2e-3)
        XCTAssertEqual(logits[2322], 4.9174, accuracy: 2e-3)
    }
}

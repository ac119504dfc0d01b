import Circuits
import TestSupport
import Transformer

/// A tiny fixture model (`tiny-gpt2`, `tiny-llama`), a reference file of it, and that reference's
/// prompt pairs.
///
/// - Parameters:
///   - reference: the reference file's name (default: the model's own, `reference/<name>.safetensors`)
func tinyFixture(_ name: String, reference: String? = nil) throws -> (TransformerModel, ReferenceFile, PairBatch) {
    let model = try TransformerModel.load(contentsOf: Fixtures.url(name))
    let file = try ReferenceFile(reference ?? name)
    let pairs = PairBatch(clean: try file.batch("clean_tokens"), corrupt: try file.batch("corrupt_tokens"),
                          correct: try file.json("correct"), incorrect: try file.json("incorrect"))
    return (model, file, pairs)
}

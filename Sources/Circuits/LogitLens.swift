import Kernels
import Transformer

/// A token's logit and probability in one read-out, and its rank among all tokens (1: the top).
public struct TokenScore: Sendable, Equatable {
    public let id: Int
    public let logit: Float
    public let probability: Float
    public let rank: Int
}

/// What the logit lens reads at one point of the stream and one position of a prompt.
public struct LensReading: Sendable {
    /// Where the stream was read.
    public let point: ResidualPoint
    /// Position in the prompt (0-based).
    public let position: Int
    /// The `top` tokens, best first.
    public let top: [TokenScore]
    /// The prompt's correct answer tokens (empty for a lone prompt).
    public let correct: [TokenScore]
    /// The prompt's incorrect answer tokens.
    public let incorrect: [TokenScore]

    /// Mean logit of the correct answers minus mean logit of the incorrect ones (design §5), or nil
    /// without both.
    public var logitDiff: Double? {
        guard !correct.isEmpty, !incorrect.isEmpty else { return nil }
        let mean = { (scores: [TokenScore]) in scores.reduce(0.0) { $0 + Double($1.logit) } / Double(scores.count) }
        return mean(correct) - mean(incorrect)
    }
}

/// Which positions of each prompt the lens reads.
public enum LensPositions: Sendable {
    /// Each prompt's last token.
    case last
    /// Every token.
    case all
}

/// The logit lens: the final norm and the unembedding applied to the residual stream at every
/// point (`blocks.l.hook_resid_pre`, `…_mid`, the last `…_post`), as if the model stopped there.
///
/// Each point is normalized with its own statistics, as the model's final norm would normalize it;
/// at the last point the lens reads exactly the model's logits.
public enum LogitLens {
    /// `[rows.count, vocab]` lens logits at `point` of a pass run with `captureResiduals`, at `rows`
    /// of its stream.
    public static func logits(model: TransformerModel, pass: ForwardPass, point: ResidualPoint, rows: [Int]) -> FloatBuffer {
        guard let residuals = pass.residuals else { preconditionFailure("the logit lens needs a pass run with captureResiduals") }
        let head = UnembeddingActivations(config: model.config, rows: rows.count)
        model.logitsForward(head, resid: residuals.pointer + point.index * pass.layout.rows * model.config.dModel, rows: rows)
        return head.logits
    }

    /// Reads every point of the stream at `positions` of each prompt.
    ///
    /// - Parameters:
    ///   - correct, incorrect: per prompt, answer tokens to follow (empty lists for lone prompts)
    ///   - top: how many of the best tokens to keep per reading
    ///   - chunkSize: prompts per forward pass (bounds the captured streams' memory)
    /// - Returns: per prompt, its readings ordered by position, then point
    public static func read(
        model: TransformerModel, prompts: [[Int]], correct: [[Int]], incorrect: [[Int]], positions: LensPositions, top: Int,
        chunkSize: Int = 16
    ) throws -> [[LensReading]] {
        precondition(correct.count == prompts.count && incorrect.count == prompts.count, "one answer list per prompt")
        let vocab = model.config.vocabularySize, points = ResidualPoint.all(layers: model.config.layers)
        var readings: [[LensReading]] = []
        for start in stride(from: 0, to: prompts.count, by: chunkSize) {
            let chunk = start..<min(start + chunkSize, prompts.count)
            let pass = try model.forward(Array(prompts[chunk]), readout: .none, captureResiduals: true)
            let layout = pass.layout
            // (prompt in chunk, position) of each row read.
            let read: [(b: Int, position: Int)] = (0..<layout.count).flatMap { b in
                (positions == .all ? 0..<layout.lengths[b] : (layout.lengths[b] - 1)..<layout.lengths[b]).map { (b, $0) }
            }
            let rows = read.map { layout.offsets[$0.b] + $0.position }
            var chunkReadings = [[LensReading]](repeating: [], count: layout.count)
            let lens = points.map { logits(model: model, pass: pass, point: $0, rows: rows) }
            for (i, (b, position)) in read.enumerated() {
                let prompt = chunk.lowerBound + b
                for (point, buffer) in zip(points, lens) {
                    let row = buffer.pointer + i * vocab
                    let probs = FloatBuffer(uninitializedCount: vocab)  // [vocab]
                    softmaxForward(probs.pointer, row, 1, vocab)
                    let score = { (id: Int) in TokenScore(id: id, logit: row[id], probability: probs[id], rank: rank(of: id, in: row, vocab)) }
                    chunkReadings[b].append(LensReading(
                        point: point, position: position, top: topTokens(row, vocab, count: top).enumerated().map {
                            TokenScore(id: $1, logit: row[$1], probability: probs[$1], rank: $0 + 1)
                        }, correct: correct[prompt].map(score), incorrect: incorrect[prompt].map(score)))
                }
            }
            readings += chunkReadings
        }
        return readings
    }
}

/// Ids of the `count` largest of `vocab` logits, largest first (ties: lower id first).
///
/// - Parameters:
///   - logits: `[vocab]`
func topTokens(_ logits: UnsafePointer<Float>, _ vocab: Int, count: Int) -> [Int] {
    guard count > 0 else { return [] }
    var best: [Int] = []
    best.reserveCapacity(count + 1)
    for j in 0..<vocab where best.count < count || logits[j] > logits[best[best.count - 1]] {
        let at = best.firstIndex { logits[$0] < logits[j] } ?? best.count
        best.insert(j, at: at)
        if best.count > count { best.removeLast() }
    }
    return best
}

/// 1 + the number of tokens whose logit exceeds token `id`'s.
///
/// - Parameters:
///   - logits: `[vocab]`
func rank(of id: Int, in logits: UnsafePointer<Float>, _ vocab: Int) -> Int {
    var above = 0
    for j in 0..<vocab where logits[j] > logits[id] { above += 1 }
    return above + 1
}

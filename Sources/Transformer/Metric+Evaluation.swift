import Foundation
import Kernels

/// What a metric compares the logits against, per example.
public struct MetricTargets: Sendable {
    /// Correct answer tokens of each example (at least one each).
    public var correct: [[Int]]
    /// Incorrect answer tokens of each example (may be empty for `logprob` and `kl`).
    public var incorrect: [[Int]]
    /// `[examples, vocab]` clean probabilities, required by `kl`.
    public var reference: FloatBuffer?

    /// Targets for `correct.count` examples.
    public init(correct: [[Int]], incorrect: [[Int]], reference: FloatBuffer? = nil) {
        self.correct = correct
        self.incorrect = incorrect
        self.reference = reference
    }

    /// Targets for `metric` on examples whose clean run gave `cleanLogits` (`[examples, vocab]`); the
    /// clean probabilities are only computed and kept for `kl`, the one metric that reads them.
    public init(metric: Metric, correct: [[Int]], incorrect: [[Int]], cleanLogits: FloatBuffer, vocab: Int) {
        self.init(correct: correct, incorrect: incorrect, reference: metric == .kl ? Self.probabilities(cleanLogits, vocab: vocab) : nil)
    }

    /// Clean probabilities `softmax(logits)` for `kl` from `[examples, vocab]` logits.
    public static func probabilities(_ logits: FloatBuffer, vocab: Int) -> FloatBuffer {
        let p = FloatBuffer(count: logits.count)
        softmaxForward(p.pointer, logits.pointer, logits.count / vocab, vocab)
        return p
    }
}

/// A metric's value on a batch.
public struct MetricValue: Sendable {
    /// Mean over examples.
    public let mean: Double
    /// Per example.
    public let values: [Double]
}

extension Metric {
    /// The vocabulary columns the metric reads at every example's read-out, when it reads only some
    /// (`logit_diff`: the answer tokens), else nil (the others normalize over the whole vocabulary).
    public func columns(_ targets: MetricTargets) -> [Int]? {
        self == .logitDiff ? Set(targets.correct.joined()).union(targets.incorrect.joined()).sorted() : nil
    }

    /// The metric at each example's read-out logits, and optionally its gradient.
    ///
    /// - Parameters:
    ///   - logits: `[examples, vocab]`, one row per example (its last real token)
    ///   - gradient: `[examples, vocab]` receives ∂(mean)/∂logits when given (overwritten)
    public func evaluate(
        logits: UnsafePointer<Float>, vocab: Int, targets: MetricTargets, gradient: UnsafeMutablePointer<Float>? = nil
    ) -> MetricValue {
        let n = targets.correct.count
        precondition(self != .kl || targets.reference != nil, "kl needs reference probabilities")
        var values = [Double](repeating: 0, count: n)
        let scale = 1 / Double(n)
        values.withUnsafeMutableBufferPointer { values in parallelFor(n) { i in
            let z = logits + i * vocab
            let correct = targets.correct[i], incorrect = targets.incorrect[i]
            let g = gradient.map { $0 + i * vocab }
            g?.update(repeating: 0, count: vocab)
            switch self {
            case .logitDiff:
                let meanCorrect = correct.reduce(0.0) { $0 + Double(z[$1]) } / Double(correct.count)
                let meanIncorrect = incorrect.isEmpty ? 0 : incorrect.reduce(0.0) { $0 + Double(z[$1]) } / Double(incorrect.count)
                values[i] = meanCorrect - meanIncorrect
                if let g {
                    for c in correct { g[c] += Float(scale / Double(correct.count)) }
                    for w in incorrect { g[w] -= Float(scale / Double(incorrect.count)) }
                }
            case .probDiff, .logprob, .kl:
                let logP = logSoftmax(z, vocab)
                switch self {
                case .probDiff:
                    let m = correct.reduce(0.0) { $0 + exp(logP[$1]) } - incorrect.reduce(0.0) { $0 + exp(logP[$1]) }
                    values[i] = m
                    if let g {
                        // ∂m/∂z_j = p_j (s_j − m), s_j = (# j in correct) − (# j in incorrect)
                        for j in 0..<vocab { g[j] = Float(-scale * exp(logP[j]) * m) }
                        for c in correct { g[c] += Float(scale * exp(logP[c])) }
                        for w in incorrect { g[w] -= Float(scale * exp(logP[w])) }
                    }
                case .logprob:
                    values[i] = correct.reduce(0.0) { $0 + logP[$1] } / Double(correct.count)
                    if let g {
                        for j in 0..<vocab { g[j] = Float(-scale * exp(logP[j])) }
                        for c in correct { g[c] += Float(scale / Double(correct.count)) }
                    }
                default:
                    let q = targets.reference!.pointer + i * vocab
                    var kl = 0.0
                    for j in 0..<vocab where q[j] > 0 { kl += Double(q[j]) * (log(Double(q[j])) - logP[j]) }
                    values[i] = kl
                    if let g { for j in 0..<vocab { g[j] = Float(scale * (exp(logP[j]) - Double(q[j]))) } }
                }
            }
        } }
        return MetricValue(mean: values.reduce(0, +) * scale, values: values)
    }
}

/// `log softmax(z)` of one row, in `Double`.
private func logSoftmax(_ z: UnsafePointer<Float>, _ vocab: Int) -> [Double] {
    var m = -Float.infinity
    for j in 0..<vocab { m = max(m, z[j]) }
    var total = 0.0
    for j in 0..<vocab { total += exp(Double(z[j] - m)) }
    let offset = Double(m) + log(total)
    return (0..<vocab).map { Double(z[$0]) - offset }
}

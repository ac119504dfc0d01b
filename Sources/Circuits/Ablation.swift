import Kernels
import Transformer

/// How corrupted sender outputs are produced (design §4).
public enum Ablation: String, CaseIterable, Codable, Sendable {
    /// The outputs of a full, unpatched run on the corrupted prompt.
    case resample
    /// The mean of the corrupted run's outputs over examples, per position.
    case mean
    /// Zeros.
    case zero

    /// The corrupted sender outputs of a chunk of pairs: the one place that applies the ablation.
    ///
    /// - Parameters:
    ///   - corrupt: the chunk's corrupted prompts, as long as its clean ones (after their shared prefixes
    ///     when `prefix` is given)
    ///   - layout: the chunk's packing
    ///   - means: per-position means over the whole data set (`mean` only)
    ///   - keepActivations: keep the corrupted run's activations and logits for a backward pass (`resample` only)
    ///   - readsOut: also compute the corrupted run's logits at the last tokens (`resample` only)
    ///   - capturesResiduals: also record the corrupted run's residual stream at every point (`resample` only)
    ///   - prefix: the prefixes the corrupted run continues from (`resample` only), or nil
    /// - Returns: `[senders, T, d]` outputs, and the corrupted run when it was made and asked for
    func corruptSenders(
        model: TransformerModel, corrupt: [[Int]], layout: SequenceLayout, means: PositionMeans?, keepActivations: Bool = false,
        readsOut: Bool = false, capturesResiduals: Bool = false, prefix: PrefixCache? = nil
    ) throws -> (senders: FloatBuffer, pass: ForwardPass?) {
        precondition(prefix == nil || self == .resample, "only resample ablation agrees with the clean run on shared prefixes")
        switch self {
        case .resample:
            let pass = try model.forward(corrupt, readout: keepActivations || readsOut ? .last : .none, keepActivations: keepActivations,
                                         captureSenders: true, captureResiduals: capturesResiduals, prefix: prefix)
            return (pass.senders!, keepActivations || readsOut || capturesResiduals ? pass : nil)
        case .mean:
            guard let means else { preconditionFailure("mean ablation needs the position means") }
            return (means.expanded(to: layout), nil)
        case .zero:
            return (FloatBuffer(count: model.graph.senders.count * layout.rows * model.config.dModel), nil)
        }
    }
}

import Kernels
import Transformer

/// The attention patterns of chosen heads on a batch of prompts.
public enum AttentionPatterns {
    /// Each head's attention weights on each prompt: `result[prompt][i]` is `heads[i]`'s
    /// `[n, n]` pattern (row = query position, column = key position; zero above the diagonal), row-major.
    ///
    /// - Parameters:
    ///   - heads: `Sender.head` values of the model
    public static func compute(model: TransformerModel, prompts: [[Int]], heads: [Sender]) throws -> [[[Float]]] {
        let positions: [(layer: Int, head: Int)] = try heads.map { sender in
            guard case .head(let l, let h) = sender, model.graph.contains(sender) else {
                throw ModelInputError("\(sender.name) is not an attention head of this model (\(model.config.layers) layers, \(model.config.heads) heads)")
            }
            return (l, h)
        }
        let pass = try model.forward(prompts, readout: .none, keepActivations: true)
        let layout = pass.layout
        return (0..<layout.count).map { b in
            let n = layout.lengths[b]
            return positions.map { l, h in
                // [n, n] block of head h in the layer's [heads, attentionSize] probabilities.
                let block = pass.activations(l).probs.pointer + h * layout.attentionSize + layout.attentionOffsets[b]
                return Array(UnsafeBufferPointer(start: block, count: n * n))
            }
        }
    }
}

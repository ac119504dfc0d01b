import Circuits
import Transformer

/// Floating-point operations of the matrix products an attribution run needs, from the model's shapes.
///
/// Counts each linear layer's forward product, the attention products (q·k and the weighted sum of
/// values per example), the input-gradient products of the backward pass including each attention
/// receiver's own projection (`3·heads` products of depth `headDim`), and the contraction of every
/// edge's sender difference with its receiver's gradient over all rows. Elementwise work (norms,
/// softmax, RoPE, activations) and the unembedding at the read-out rows are left out, so the count
/// is a lower bound.
struct AttributionWork {
    /// One forward pass over every prompt of one side.
    let forward: Double
    /// One backward pass producing every receiver's gradient.
    let backward: Double
    /// One backward pass producing only the input embedding's gradient (one fused q/k/v product per layer).
    let inputGradientBackward: Double
    /// One contraction of all edges.
    let contraction: Double

    init(config c: TransformerConfig, lengths: [Int]) {
        let rows = Double(lengths.reduce(0, +)), d = Double(c.dModel), layers = Double(c.layers)
        // Σ over examples of the causal score entries, times heads and head width: one attention product.
        let attention = lengths.reduce(0.0) { $0 + Double($1 * ($1 + 1) / 2) } * Double(c.heads * c.headDim) * 2
        let projections = 2 * d * Double(c.qkvWidth + c.mlpInWidth) + 2 * Double(c.qWidth) * d + 2 * Double(c.dMLP) * d
        forward = layers * (rows * projections + 2 * attention)
        let gradients = 2 * Double(c.dMLP) * d + 2 * Double(c.mlpInWidth) * d + 2 * Double(c.qWidth) * d + 2 * Double(3 * c.heads * c.headDim) * d
        backward = layers * (rows * gradients + 4 * attention)
        inputGradientBackward = backward - layers * rows * 2 * Double(3 * c.heads * c.headDim - c.qkvWidth) * d
        contraction = 2 * Double(CircuitGraph(config: c).edgeCount) * rows * d
    }

    /// EAP (`steps` nil): clean and corrupted forwards, one backward and contraction. EAP-IG: the same
    /// two forwards (the corrupted one is the first interpolation point), `steps − 1` more, and
    /// `steps` backwards and contractions.
    func total(steps: Int?) -> Double {
        let m = Double(steps ?? 1)
        return (1 + m) * forward + m * (backward + contraction)
    }
}

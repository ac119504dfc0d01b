/// A point of the residual stream that `ForwardPass.residuals` records, named as TransformerLens
/// names its hooks.
///
/// A model of L blocks has 2L + 1 points: before block l (`blocks.l.hook_resid_pre`, index 2l),
/// between its attention and MLP (`blocks.l.hook_resid_mid`, 2l + 1), and after the last block
/// (`blocks.{L−1}.hook_resid_post`, 2L). The stream after block l < L − 1 is the one before block
/// l + 1, so it has no point of its own.
public struct ResidualPoint: Hashable, Sendable {
    /// Index into `ForwardPass.residuals`' first axis.
    public let index: Int
    /// Blocks of the model.
    public let layers: Int

    /// Point `index` (0 ... 2·layers) of a model with `layers` blocks.
    public init(index: Int, layers: Int) {
        precondition(index >= 0 && index <= 2 * layers, "residual point \(index) outside 0...\(2 * layers)")
        self.index = index
        self.layers = layers
    }

    /// Every point of a model with `layers` blocks, from the embedding to the final stream.
    public static func all(layers: Int) -> [ResidualPoint] {
        (0...(2 * layers)).map { ResidualPoint(index: $0, layers: layers) }
    }

    /// The stream entering block `layer` (`layer == layers`: after the last block).
    public static func pre(_ layer: Int, layers: Int) -> ResidualPoint { ResidualPoint(index: 2 * layer, layers: layers) }

    /// The block the point belongs to in its hook name.
    public var layer: Int { index == 2 * layers ? layers - 1 : index / 2 }

    /// TransformerLens hook name: `blocks.3.hook_resid_pre`, `blocks.3.hook_resid_mid`, `blocks.29.hook_resid_post`.
    public var name: String { "blocks.\(layer).hook_resid_\(kind)" }

    /// Short label for tables: `3 pre`, `3 mid`, `29 post`.
    public var label: String { "\(layer) \(kind)" }

    /// `pre`, `mid` or `post`.
    private var kind: String { index == 2 * layers ? "post" : index % 2 == 0 ? "pre" : "mid" }
}

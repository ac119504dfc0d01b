import Transformer

/// A patching coefficient α per edge (design §4): 0 keeps the edge clean, 1 corrupts it fully.
public struct EdgeMask: Sendable, Equatable {
    /// `[graph.edgeCount]` coefficients.
    public var alpha: [Float]

    /// Every edge set to `value` (0: the clean run; 1: everything corrupted).
    public init(graph: CircuitGraph, value: Float = 0) {
        alpha = [Float](repeating: value, count: graph.edgeCount)
    }

    /// Every edge corrupted except `kept`, which stay clean: the mask that evaluates a circuit.
    public init(graph: CircuitGraph, keeping kept: some Sequence<Int>) {
        alpha = [Float](repeating: 1, count: graph.edgeCount)
        for i in kept { alpha[i] = 0 }
    }

    /// The given coefficients, one per edge in `CircuitGraph` order.
    public init(alpha: [Float]) {
        self.alpha = alpha
    }

    /// Coefficient of edge `i`.
    public subscript(i: Int) -> Float {
        get { alpha[i] }
        set { alpha[i] = newValue }
    }
}

import Kernels

/// The gradients of a group of receivers, handed to the consumer as the backward pass produces them.
///
/// The memory is only valid during the callback: consumers contract it (EAP dots it with sender
/// differences) or copy it. Holding every receiver's gradient at once would take
/// `receivers × T × d` floats (about 3 GB for SmolLM2 on 100 prompts).
public struct ReceiverGradients {
    /// The receivers, in the order of `gradients`.
    public let receivers: [Receiver]
    /// `[receivers.count, T, d]`: ∂M/∂(receiver input) at every row of the batch.
    public let gradients: UnsafePointer<Float>
    /// Rows of the batch (T).
    public let rows: Int
    /// Width of the residual stream (d).
    public let dModel: Int

    /// The `[T, d]` gradient of the `i`th receiver.
    public func gradient(_ i: Int) -> UnsafePointer<Float> { gradients + i * rows * dModel }
}

extension TransformerModel {
    /// Backpropagates a gradient of the logits through a forward pass run with `keepActivations`,
    /// computing the gradient at every receiver of the computational graph (design §3).
    ///
    /// Receivers come in reverse topological order: `logits`, then for each layer from the last,
    /// `m{l}`, then the 3 × heads attention receivers `a{l}.h{h}<q|k|v>` (heads ascending, q, k, v).
    /// Each receiver has its own copy of the residual stream, normalized on its own: its gradient
    /// flows only through its own path (with grouped-query attention, a query head's `<k>`/`<v>`
    /// gradient is that head's share of its group's key/value gradient).
    ///
    /// - Parameters:
    ///   - pass: a forward pass with kept activations
    ///   - dLogits: `[readout rows, vocab]` gradient of the metric with respect to the logits
    ///   - onReceivers: called with each group of receiver gradients as it is produced
    /// - Returns: `[T, d]` gradient with respect to the input embedding
    @discardableResult
    public func backward(
        _ pass: ForwardPass, dLogits: UnsafePointer<Float>, onReceivers: (ReceiverGradients) -> Void
    ) -> FloatBuffer {
        precondition(pass.layers.count == config.layers, "backward needs a forward pass run with keepActivations")
        let c = config, layout = pass.layout, t = layout.rows, d = c.dModel, dh = c.headDim
        let n = pass.readoutRows.count, plane = t * d

        // logits receiver: through the unembedding and the final norm, at the read-out rows.
        let dNormed = FloatBuffer(count: n * d)
        matmulBackward(dNormed.pointer, dLogits, unembedding.pointer, n, d, c.vocabularySize)
        let dRows = FloatBuffer(count: n * d)
        normBackward(dRows.pointer, dNormed.pointer, pass.readout.input.pointer, weight: finalNormWeight,
                     pass.readout.mean.pointer, pass.readout.rstd.pointer, n)
        let dResid = FloatBuffer(count: plane)  // ∂M/∂(residual stream) at the current point
        for (i, r) in pass.readoutRows.enumerated() { axpy(dResid.pointer + r * d, 1, dRows.pointer + i * d, d) }
        onReceivers(ReceiverGradients(receivers: [.logits], gradients: dResid.pointer, rows: t, dModel: d))

        let dAct = FloatBuffer(count: t * c.dMLP), dUp = FloatBuffer(count: t * c.dMLP)
        let dGate = FloatBuffer(count: c.mlp == .swiglu ? t * c.dMLP : 0)
        let dNorm = FloatBuffer(count: plane)
        let gradMLP = FloatBuffer(count: plane)
        let dZ = FloatBuffer(count: t * c.qWidth)
        // Per-head gradients of queries, keys and values: [heads, T, dh] each.
        let dQ = FloatBuffer(count: c.heads * t * dh), dK = FloatBuffer(count: c.heads * t * dh), dV = FloatBuffer(count: c.heads * t * dh)
        let attentionReceivers = (0..<c.heads).flatMap { h in QKV.allCases.map { (h, $0) } }
        let gradHeads = FloatBuffer(count: attentionReceivers.count * plane)

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let acts = pass.layers[l], w = blocks[l]

            // MLP receiver m{l}.
            dAct.zero()
            matmulBackward(dAct.pointer, dResid.pointer, w.wDown.pointer, t, c.dMLP, d)
            dUp.zero()
            dNorm.zero()
            switch c.mlp {
            case .gelu:
                geluBackward(dUp.pointer, acts.mlpUp.pointer, dAct.pointer, t * c.dMLP)
            case .swiglu:
                dGate.zero()
                swigluBackward(dGate.pointer, dUp.pointer, acts.mlpGate.pointer, acts.mlpUp.pointer, dAct.pointer, t * c.dMLP)
                matmulBackward(dNorm.pointer, dGate.pointer, w.wGate!.pointer, t, d, c.dMLP)
            }
            matmulBackward(dNorm.pointer, dUp.pointer, w.wUp.pointer, t, d, c.dMLP)
            gradMLP.zero()
            normBackward(gradMLP.pointer, dNorm.pointer, acts.residMid.pointer, weight: w.norm2Weight,
                         acts.norm2Mean.pointer, acts.norm2Rstd.pointer, t)
            onReceivers(ReceiverGradients(receivers: [.mlp(layer: l)], gradients: gradMLP.pointer, rows: t, dModel: d))
            axpy(dResid.pointer, 1, gradMLP.pointer, plane)

            // Attention receivers a{l}.h{h}<q|k|v>.
            dZ.zero()
            matmulBackward(dZ.pointer, dResid.pointer, w.wo.pointer, t, c.qWidth, d)
            dQ.zero()
            dK.zero()
            dV.zero()
            func perHead(_ buffer: FloatBuffer) -> [HeadSlice] { (0..<c.heads).map { HeadSlice(buffer.pointer + $0 * t * dh, stride: dh) } }
            Kernels.attentionBackward(
                perHead(dQ), perHead(dK), perHead(dV),
                (0..<c.heads).map { HeadSlice(dZ.pointer + $0 * dh, stride: c.qWidth) }, acts.probs.pointer,
                (0..<c.heads).map { HeadSlice(acts.q.pointer + $0 * dh, stride: c.qWidth) },
                (0..<c.heads).map { HeadSlice(acts.k.pointer + ($0 / c.groupSize) * dh, stride: c.kvWidth) },
                (0..<c.heads).map { HeadSlice(acts.v.pointer + ($0 / c.groupSize) * dh, stride: c.kvWidth) },
                layout, scale: 1 / Float(dh).squareRoot(), dh)
            if let rope {
                for h in 0..<c.heads {
                    ropeBackward(dQ.pointer + h * t * dh, dQ.pointer + h * t * dh, rope, layout.positions, ropeStyle, t, 1, dh, rowStride: dh)
                    ropeBackward(dK.pointer + h * t * dh, dK.pointer + h * t * dh, rope, layout.positions, ropeStyle, t, 1, dh, rowStride: dh)
                }
            }
            gradHeads.zero()
            for (i, (h, port)) in attentionReceivers.enumerated() {
                let g = h / c.groupSize
                let (dX, weight, row0): (FloatBuffer, FloatBuffer, Int) = switch port {
                case .q: (dQ, w.wq, h * dh)
                case .k: (dK, w.wk, g * dh)
                case .v: (dV, w.wv, g * dh)
                }
                dNorm.zero()
                matmulBackward(dNorm.pointer, dX.pointer + h * t * dh, weight.pointer + row0 * d, t, d, dh)
                normBackward(gradHeads.pointer + i * plane, dNorm.pointer, acts.residPre.pointer, weight: w.norm1Weight,
                             acts.norm1Mean.pointer, acts.norm1Rstd.pointer, t)
            }
            onReceivers(ReceiverGradients(
                receivers: attentionReceivers.map { .head(layer: l, head: $0.0, port: $0.1) },
                gradients: gradHeads.pointer, rows: t, dModel: d))
            for i in 0..<attentionReceivers.count { axpy(dResid.pointer, 1, gradHeads.pointer + i * plane, plane) }
        }
        return dResid
    }

    /// `[T, d]` input embeddings of `batch` (the `input` sender).
    public func embedding(_ batch: [[Int]]) throws -> FloatBuffer {
        try validate(batch)
        let layout = SequenceLayout(lengths: batch.map(\.count))
        let out = FloatBuffer(count: layout.rows * config.dModel)
        embed(out.pointer, tokens: batch.flatMap { $0 }, layout: layout)
        return out
    }

    /// EAP-IG's interpolated input: `corrupt + t·(clean − corrupt)` of two batches of equal lengths.
    ///
    /// - Returns: `[T, d]`
    public func interpolatedEmbedding(clean: [[Int]], corrupt: [[Int]], t: Float) throws -> FloatBuffer {
        guard clean.map(\.count) == corrupt.map(\.count) else {
            throw ModelInputError("clean and corrupt batches must have the same lengths")
        }
        let a = try embedding(clean), b = try embedding(corrupt)
        for i in 0..<b.count { b[i] += t * (a[i] - b[i]) }
        return b
    }
}

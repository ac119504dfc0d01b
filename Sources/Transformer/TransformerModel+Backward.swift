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
    /// Each receiver has its own copy of the residual stream, normalized on its own: its gradient
    /// flows only through its own path (with grouped-query attention, a query head's `<k>`/`<v>`
    /// gradient is that head's share of its group's key/value gradient).
    ///
    /// Receivers arrive in reverse topological order, grouped so that a group's upstream senders are
    /// (nearly) one prefix: `[logits, m{L−1}]`, then for each layer l from the last
    /// `[a{l}.h{h}<q|k|v> for every head (heads ascending; q, k, v), m{l−1}]` — the MLP of the layer
    /// below reads the same senders as these heads except itself — and finally `[a0.h{h}<q|k|v>…]`.
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
        let attentionReceivers = (0..<c.heads).flatMap { h in QKV.allCases.map { (h, $0) } }
        // One slot per attention receiver of a block plus one for the MLP below it: `[3·heads + 1, T, d]`.
        let slots = FloatBuffer(uninitializedCount: (attentionReceivers.count + 1) * plane)
        func slot(_ i: Int) -> UnsafeMutablePointer<Float> { slots.pointer + i * plane }

        // logits receiver: through the unembedding and the final norm, at the read-out rows.
        let dNormed = FloatBuffer(uninitializedCount: n * d)
        matmulBackward(dNormed.pointer, dLogits, unembedding.pointer, n, d, c.vocabularySize, accumulate: false)
        let dRows = FloatBuffer(uninitializedCount: n * d)
        normBackward(dRows.pointer, dNormed.pointer, pass.readout.input.pointer, weight: finalNormWeight,
                     pass.readout.mean.pointer, pass.readout.rstd.pointer, n, accumulate: false)
        let dResid = FloatBuffer(count: plane)  // ∂M/∂(residual stream) at the current point
        for (i, r) in pass.readoutRows.enumerated() { axpy(dResid.pointer + r * d, 1, dRows.pointer + i * d, d) }
        slot(0).update(from: dResid.pointer, count: plane)
        var pending: [Receiver] = [.logits]  // receivers in slots 0..<pending.count, delivered with the next MLP

        let dAct = FloatBuffer(uninitializedCount: t * c.dMLP)
        let dIn = FloatBuffer(uninitializedCount: t * c.mlpInWidth)  // gradient of the MLP's input projection
        let dZ = FloatBuffer(uninitializedCount: t * c.qWidth)
        // Per-head gradients of queries, keys and values: [heads, T, dh] each.
        let dQ = FloatBuffer(uninitializedCount: c.heads * t * dh), dK = FloatBuffer(uninitializedCount: c.heads * t * dh)
        let dV = FloatBuffer(uninitializedCount: c.heads * t * dh)

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let acts = pass.layers[l], w = blocks[l]

            // MLP receiver m{l}, written into the slot after the pending receivers and delivered with them.
            let mlpSlot = slot(pending.count)
            matmulBackward(dAct.pointer, dResid.pointer, w.wDown.pointer, t, c.dMLP, d, accumulate: false)
            switch c.mlp {
            case .gelu:
                geluBackward(dIn.pointer, acts.mlpIn.pointer, dAct.pointer, t * c.dMLP, accumulate: false)
            case .swiglu:
                swigluBackward(dIn.pointer, dIn.pointer + c.dMLP, acts.mlpIn.pointer, acts.mlpIn.pointer + c.dMLP, dAct.pointer,
                               t, c.dMLP, inputStride: c.mlpInWidth, accumulate: false)
            }
            matmulBackward(mlpSlot, dIn.pointer, w.wIn.pointer, t, d, c.mlpInWidth, accumulate: false)
            normBackward(mlpSlot, mlpSlot, acts.residMid.pointer, weight: w.norm2Weight, acts.norm2Mean.pointer,
                         acts.norm2Rstd.pointer, t, accumulate: false)
            onReceivers(ReceiverGradients(receivers: pending + [.mlp(layer: l)], gradients: slots.pointer, rows: t, dModel: d))
            addSum(dResid.pointer, [mlpSlot], plane)

            // Attention receivers a{l}.h{h}<q|k|v>, each written into its slot.
            matmulBackward(dZ.pointer, dResid.pointer, w.wo.pointer, t, c.qWidth, d, accumulate: false)
            func perHead(_ buffer: FloatBuffer) -> [HeadSlice] { (0..<c.heads).map { HeadSlice(buffer.pointer + $0 * t * dh, stride: dh) } }
            Kernels.attentionBackward(
                perHead(dQ), perHead(dK), perHead(dV),
                (0..<c.heads).map { HeadSlice(dZ.pointer + $0 * dh, stride: c.qWidth) }, acts.probs.pointer,
                (0..<c.heads).map { HeadSlice(acts.qkv.pointer + $0 * dh, stride: c.qkvWidth) },
                (0..<c.heads).map { HeadSlice(acts.qkv.pointer + c.qWidth + ($0 / c.groupSize) * dh, stride: c.qkvWidth) },
                (0..<c.heads).map { HeadSlice(acts.qkv.pointer + c.qWidth + c.kvWidth + ($0 / c.groupSize) * dh, stride: c.qkvWidth) },
                layout, scale: 1 / Float(dh).squareRoot(), dh, accumulate: false)
            if let rope {
                ropeBackward(dQ.pointer, dQ.pointer, rope, (0..<c.heads).flatMap { _ in layout.positions }, ropeStyle,
                             c.heads * t, 1, dh, rowStride: dh)
                ropeBackward(dK.pointer, dK.pointer, rope, (0..<c.heads).flatMap { _ in layout.positions }, ropeStyle,
                             c.heads * t, 1, dh, rowStride: dh)
            }
            // Row block by row block, so that a block's projections, norm backward and sum into dResid
            // stay in cache: `[rows, d]` per receiver.
            let blockRows = 64
            parallelFor((t + blockRows - 1) / blockRows) { block in
                let r0 = block * blockRows, rows = min(blockRows, t - r0)
                for (i, (h, port)) in attentionReceivers.enumerated() {
                    let g = h / c.groupSize
                    let (dX, weight, row0): (FloatBuffer, FloatBuffer, Int) = switch port {
                    case .q: (dQ, w.wq, h * dh)
                    case .k: (dK, w.wk, g * dh)
                    case .v: (dV, w.wv, g * dh)
                    }
                    let out = slot(i) + r0 * d
                    matmulBackward(out, dX.pointer + (h * t + r0) * dh, weight.pointer + row0 * d, rows, d, dh, accumulate: false)
                    normBackward(out, out, acts.residPre.pointer + r0 * d, weight: w.norm1Weight, acts.norm1Mean.pointer + r0,
                                 acts.norm1Rstd.pointer + r0, rows, accumulate: false)
                    axpy(dResid.pointer + r0 * d, 1, out, rows * d)
                }
            }
            pending = attentionReceivers.map { .head(layer: l, head: $0.0, port: $0.1) }
        }
        onReceivers(ReceiverGradients(receivers: pending, gradients: slots.pointer, rows: t, dModel: d))
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

import Kernels

/// The gradients of a group of receivers at a range of rows, handed to the consumer as the backward
/// pass produces them.
///
/// The memory is only valid during the callback: consumers contract it (EAP dots it with sender
/// differences) or copy it. Holding every receiver's gradient at once would take
/// `receivers × T × d` floats (about 3 GB for SmolLM2 on 100 prompts); delivering a block's
/// receivers a few rows at a time keeps them in cache between being produced and being consumed.
public struct ReceiverGradients {
    /// The receivers, in the order of `gradients`.
    public let receivers: [Receiver]
    /// `[receivers.count, rows, d]`: ∂M/∂(receiver input) at rows `firstRow ..< firstRow + rows` of the batch.
    public let gradients: UnsafePointer<Float>
    /// The batch row that row 0 of each gradient is.
    public let firstRow: Int
    /// Rows of each gradient.
    public let rows: Int
    /// Width of the residual stream (d).
    public let dModel: Int

    /// The `[rows, d]` gradient of the `i`th receiver.
    public func gradient(_ i: Int) -> UnsafePointer<Float> { gradients + i * rows * dModel }
}

/// How sender gradients leave the shared residual gradient in a run with patched edges.
///
/// With edge coefficients α (design §4), a receiver reads `Σ_s (1 − α_{s→r})·current_s + α_{s→r}·corrupt_s`,
/// so sender s's output gradient is `Σ_r (1 − α_{s→r})·∂M/∂input_r`: the residual gradient (the sum of
/// every downstream receiver's gradient) minus a correction `Σ_r α_{s→r}·∂M/∂input_r`, or, when fewer of
/// its edges have α ≠ 1 than α ≠ 0 (a run with most edges corrupted), that sum itself. The backward pass
/// asks for it just before it backpropagates through sender s; the consumer builds it from the receiver
/// gradients it has been handed so far. A sender whose every outgoing edge has α = 1 is cut off: its
/// output gradient is zero, and the backward pass skips it (its receivers get zero gradients).
public protocol SenderGradientRouting: AnyObject {
    /// Sender `s`'s output gradient from the receivers delivered so far.
    func routedGradient(sender s: Int) -> RoutedGradient
    /// Whether sender `s`'s every outgoing edge has α = 1, so that its output gradient is zero.
    func isCut(sender s: Int) -> Bool
}

/// A sender's output gradient in a run with patched edges, relative to the residual gradient.
public enum RoutedGradient {
    /// `[T, d]` the residual gradient minus this correction `Σ_r α_{s→r}·∂M/∂input_r`; nil: the residual
    /// gradient itself (every α of the delivered receivers is 0).
    case residualMinus(UnsafePointer<Float>?)
    /// `[T, d]` the gradient itself, `Σ_r (1 − α_{s→r})·∂M/∂input_r`; nil: zero.
    case direct(UnsafePointer<Float>?)
}

extension TransformerModel {
    /// Rows of one delivery of receiver gradients: a block's `3·heads + 2` receivers at this many
    /// rows (about 4 MB on SmolLM2) stay in the caches of the two cores that produce them.
    static let receiverChunkRows = 64

    /// Backpropagates a gradient of the logits through a forward pass run with `keepActivations`,
    /// computing the gradient at every receiver of the computational graph (design §3).
    ///
    /// Each receiver has its own copy of the residual stream, normalized on its own: its gradient
    /// flows only through its own path (with grouped-query attention, a query head's `<k>`/`<v>`
    /// gradient is that head's share of its group's key/value gradient). Receivers that read their
    /// own input in a patched run are differentiated at that input, which the run's patch gives again
    /// (`ForwardPass.patch`).
    ///
    /// Receivers arrive block by block from the last, in reverse topological order. Without
    /// `routing` they are grouped so that a group's upstream senders are (nearly) one prefix:
    /// `[logits, m{L−1}, a{L−1}.h{h}<q|k|v>…]`, then for each layer l below `[m{l}, a{l}.h{h}<q|k|v> for
    /// every head (heads ascending; q, k, v)]`, each group in chunks of `receiverChunkRows` rows, in row
    /// order. With `routing`, every receiver a sender reads from is delivered before that sender's
    /// correction is asked for: `[logits]`, then per layer `[m{l}]` (all rows at once) and the
    /// layer's attention receivers in chunks.
    ///
    /// - Parameters:
    ///   - pass: a forward pass with kept activations
    ///   - dLogits: `[readout rows, vocab]` gradient of the metric with respect to the logits
    ///   - routing: per-sender gradients for a run with patched edges, or nil (α = 0: every sender's
    ///     gradient is the residual gradient)
    ///   - lowest: the last layer backpropagated through (0: every layer); a pass that ran from this
    ///     layer on (`run(_:from:patch:)`) has every activation the backward pass reads
    ///   - onReceivers: called with each chunk of each group of receiver gradients as it is produced
    /// - Returns: `[T, d]` gradient with respect to the `input` sender (the input embedding); with
    ///   `lowest` above 0, with respect to the residual stream entering that layer
    @discardableResult
    public func backward(
        _ pass: ForwardPass, dLogits: UnsafePointer<Float>, routing: SenderGradientRouting? = nil, through lowest: Int = 0,
        onReceivers: (ReceiverGradients) -> Void
    ) -> FloatBuffer {
        precondition(pass.layers.count == config.layers, "backward needs a forward pass run with keepActivations")
        precondition((0...config.layers).contains(lowest), "backward through layer \(lowest) of \(config.layers)")
        let c = config, g = graph, layout = pass.layout, t = layout.rows, d = c.dModel, dh = c.headDim
        let rope = self.rope?.covering(layout)
        let n = pass.readoutRows.count, plane = t * d
        let attentionReceivers = (0..<c.heads).flatMap { h in QKV.allCases.map { (h, $0) } }
        let chunkRows = min(t, Self.receiverChunkRows)
        // One chunk of a group: `[3·heads + 2, chunkRows, d]`.
        let chunk = FloatBuffer(uninitializedCount: (attentionReceivers.count + 2) * chunkRows * d)
        /// Hands over one whole-stream receiver's `[T, d]` gradient in one piece (routed runs).
        func deliver(_ receiver: Receiver, _ gradient: FloatBuffer) {
            onReceivers(ReceiverGradients(receivers: [receiver], gradients: gradient.pointer, firstRow: 0, rows: t, dModel: d))
        }

        // logits receiver: through the unembedding and the final norm, at the read-out rows.
        let dNormed = FloatBuffer(uninitializedCount: n * d)
        matmulBackwardSparse(dNormed.pointer, dLogits, unembedding.pointer, n, d, c.vocabularySize, accumulate: false)
        let dRows = FloatBuffer(uninitializedCount: n * d)
        normBackward(dRows.pointer, dNormed.pointer, pass.readout.input.pointer, weight: finalNormWeight,
                     pass.readout.mean.pointer, pass.readout.rstd.pointer, n, accumulate: false)
        let dResid = FloatBuffer(count: plane)  // Σ of the gradients of the receivers delivered so far
        for (i, r) in pass.readoutRows.enumerated() { axpy(dResid.pointer + r * d, 1, dRows.pointer + i * d, d) }
        let logitsGradient = FloatBuffer(uninitializedCount: plane)  // `[T, d]`, delivered with the last block
        logitsGradient.pointer.update(from: dResid.pointer, count: plane)
        if routing != nil { deliver(.logits, logitsGradient) }

        // `[T, d]` a sender's output gradient, dResid minus its routing correction, or zero.
        let senderGradient = routing == nil ? nil : FloatBuffer(uninitializedCount: plane)
        /// The output gradient of sender `s`: dResid itself when nothing is routed away from it.
        func outputGradient(_ s: Int) -> UnsafePointer<Float> {
            guard let routing, let out = senderGradient else { return UnsafePointer(dResid.pointer) }
            switch routing.routedGradient(sender: s) {
            case .residualMinus(nil):
                return UnsafePointer(dResid.pointer)
            case .residualMinus(let correction?):
                out.pointer.update(from: dResid.pointer, count: plane)
                axpy(out.pointer, -1, correction, plane)
            case .direct(let gradient?):
                return gradient
            case .direct(nil):
                out.pointer.update(repeating: 0, count: plane)
            }
            return UnsafePointer(out.pointer)
        }

        let dAct = FloatBuffer(uninitializedCount: t * c.dMLP)
        let dIn = FloatBuffer(uninitializedCount: t * c.mlpInWidth)  // gradient of the MLP's input projection
        let mlpGradient = FloatBuffer(uninitializedCount: plane)  // `[T, d]`, the m{l} receiver
        let dZ = FloatBuffer(uninitializedCount: t * c.qWidth)
        // Per-head gradients of queries, keys and values: [heads, T, dh] each.
        let dQ = FloatBuffer(uninitializedCount: c.heads * t * dh), dK = FloatBuffer(uninitializedCount: c.heads * t * dh)
        let dV = FloatBuffer(uninitializedCount: c.heads * t * dh)

        for l in stride(from: c.layers - 1, through: lowest, by: -1) {
            let acts = pass.layers[l], w = blocks[l], own = acts.ownActivations
            precondition(own == nil || pass.patch != nil, "receivers with their own inputs are differentiated at the patch's inputs")

            // MLP receiver m{l}, over every row at once (its weights are read once); nothing when m{l} is
            // cut off (its receiver's gradient is zero).
            let mlpSender = g.index(of: Sender.mlp(layer: l))
            if routing?.isCut(sender: mlpSender) == true {
                mlpGradient.pointer.update(repeating: 0, count: plane)
            } else {
                matmulBackward(dAct.pointer, outputGradient(mlpSender), w.wDown.pointer, t, c.dMLP, d, accumulate: false)
                switch c.mlp {
                case .gelu:
                    geluBackward(dIn.pointer, acts.mlpIn.pointer, dAct.pointer, t * c.dMLP, accumulate: false)
                case .swiglu:
                    swigluBackward(dIn.pointer, dIn.pointer + c.dMLP, acts.mlpIn.pointer, acts.mlpIn.pointer + c.dMLP, dAct.pointer,
                                   t, c.dMLP, inputStride: c.mlpInWidth, accumulate: false)
                }
                matmulBackward(mlpGradient.pointer, dIn.pointer, w.wIn.pointer, t, d, c.mlpInWidth, accumulate: false)
                let input = pass.patch?.mlpInput(layer: l, resid: acts.residMid.pointer) ?? UnsafePointer(acts.residMid.pointer)
                normBackward(mlpGradient.pointer, mlpGradient.pointer, input, weight: w.norm2Weight,
                             acts.norm2Mean.pointer, acts.norm2Rstd.pointer, t, accumulate: false)
                addSum(dResid.pointer, [mlpGradient.pointer], plane)
            }
            if routing != nil { deliver(.mlp(layer: l), mlpGradient) }

            // Attention: per-head gradients of queries, keys and values over every row; heads cut off
            // have zero output gradients, and so do their receivers: their attention is not differentiated
            // (nor read: a run may replace them instead of computing them).
            let cutHeads = (0..<c.heads).map { routing?.isCut(sender: g.index(of: .head(layer: l, head: $0))) ?? false }
            if routing == nil {
                matmulBackward(dZ.pointer, dResid.pointer, w.wo.pointer, t, c.qWidth, d, accumulate: false)
            } else {
                for h in 0..<c.heads {
                    if cutHeads[h] {
                        for row in 0..<t { (dZ.pointer + row * c.qWidth + h * dh).update(repeating: 0, count: dh) }
                        continue
                    }
                    gemm(dZ.pointer + h * dh, ldc: c.qWidth, outputGradient(g.index(of: .head(layer: l, head: h))), lda: d,
                         transposeA: false, w.wo.pointer + h * dh, ldb: c.qWidth, transposeB: false, accumulate: false, t, dh, d)
                }
            }
            func perHead(_ buffer: FloatBuffer) -> [HeadSlice] { (0..<c.heads).map { HeadSlice(buffer.pointer + $0 * t * dh, stride: dh) } }
            /// Head h's keys or values: its own when its input was replaced, else its group's slice of `qkv`.
            func kvSlices(_ owned: [FloatBuffer?]?, offset: Int) -> [HeadSlice] {
                (0..<c.heads).map { h in
                    if let mine = owned?[h] { return HeadSlice(mine.pointer, stride: dh) }
                    return HeadSlice(acts.qkv.pointer + offset + (h / c.groupSize) * dh, stride: c.qkvWidth)
                }
            }
            Kernels.attentionBackward(
                perHead(dQ), perHead(dK), perHead(dV),
                (0..<c.heads).map { HeadSlice(dZ.pointer + $0 * dh, stride: c.qWidth) }, acts.probs.pointer,
                (0..<c.heads).map { HeadSlice(acts.qkv.pointer + $0 * dh, stride: c.qkvWidth) },
                kvSlices(own?.keys, offset: c.qWidth), kvSlices(own?.values, offset: c.qWidth + c.kvWidth),
                layout, prefix: pass.prefix?.attention(layer: l, layout: layout), scale: 1 / Float(dh).squareRoot(), dh, accumulate: false,
                heads: (0..<c.heads).filter { !cutHeads[$0] })
            if let rope {
                ropeBackward(dQ.pointer, dQ.pointer, rope, (0..<c.heads).flatMap { _ in layout.positions }, ropeStyle,
                             c.heads * t, 1, dh, rowStride: dh)
                ropeBackward(dK.pointer, dK.pointer, rope, (0..<c.heads).flatMap { _ in layout.positions }, ropeStyle,
                             c.heads * t, 1, dh, rowStride: dh)
            }

            // The block's group, chunk by chunk: the whole-stream receivers are copied in (unless they
            // were delivered already), and each attention receiver a{l}.h{h}<q|k|v> is projected,
            // normalized and summed into dResid.
            let wholeStream: [(Receiver, FloatBuffer)] = routing != nil ? []
                : (l == c.layers - 1 ? [(.logits, logitsGradient)] : []) + [(.mlp(layer: l), mlpGradient)]
            let receivers = wholeStream.map(\.0) + attentionReceivers.map { .head(layer: l, head: $0.0, port: $0.1) }
            // The receivers' own inputs, as the run read them.
            let receiverInputs = own == nil ? nil : pass.patch?.attentionInputs(layer: l, resid: acts.residPre.pointer)
            for r0 in stride(from: 0, to: t, by: chunkRows) {
                let rows = min(chunkRows, t - r0), size = rows * d
                for (i, (_, gradient)) in wholeStream.enumerated() {
                    (chunk.pointer + i * size).update(from: gradient.pointer + r0 * d, count: size)
                }
                let heads = chunk.pointer + wholeStream.count * size
                // Split between the workers by rows, so that each sums its own rows into dResid.
                parallelChunks(rows) { range in
                    let b0 = range.lowerBound, bRows = range.count, row0 = r0 + b0
                    for (i, (h, port)) in attentionReceivers.enumerated() {
                        let g = h / c.groupSize
                        let (dX, weight, weightRow0): (FloatBuffer, FloatBuffer, Int) = switch port {
                        case .q: (dQ, w.wq, h * dh)
                        case .k: (dK, w.wk, g * dh)
                        case .v: (dV, w.wv, g * dh)
                        }
                        // The receiver's own input and norm statistics in a patched run, else the block's.
                        let (input, mean, rstd) = if let mean = own?.mean[i], let rstd = own?.rstd[i] {
                            (receiverInputs![h, port]!, UnsafePointer(mean.pointer), UnsafePointer(rstd.pointer))
                        } else {
                            (UnsafePointer(acts.residPre.pointer), UnsafePointer(acts.norm1Mean.pointer), UnsafePointer(acts.norm1Rstd.pointer))
                        }
                        let out = heads + i * size + b0 * d
                        if cutHeads[h] {
                            out.update(repeating: 0, count: bRows * d)
                            continue
                        }
                        matmulBackward(out, dX.pointer + (h * t + row0) * dh, weight.pointer + weightRow0 * d, bRows, d, dh,
                                       accumulate: false)
                        normBackward(out, out, input + row0 * d, weight: w.norm1Weight, mean + row0, rstd + row0, bRows, accumulate: false)
                        axpy(dResid.pointer + row0 * d, 1, out, bRows * d)
                    }
                }
                onReceivers(ReceiverGradients(receivers: receivers, gradients: chunk.pointer, firstRow: r0, rows: rows, dModel: d))
            }
        }
        // The input sender's gradient, in place in dResid.
        if lowest == 0, let routing {
            switch routing.isCut(sender: 0) ? .direct(nil) : routing.routedGradient(sender: 0) {
            case .residualMinus(nil): break
            case .residualMinus(let correction?): axpy(dResid.pointer, -1, correction, plane)
            case .direct(let gradient?): dResid.pointer.update(from: gradient, count: plane)
            case .direct(nil): dResid.pointer.update(repeating: 0, count: plane)
            }
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
        interpolate(b.pointer, corrupt: b.pointer, clean: a.pointer, t: t, b.count)
        return b
    }
}

/// EAP-IG's interpolation `out = corrupt + t·(clean − corrupt)`, element by element (`out` may be `corrupt`).
///
/// - Parameters:
///   - out, corrupt, clean: `[count]`
public func interpolate(
    _ out: UnsafeMutablePointer<Float>, corrupt: UnsafePointer<Float>, clean: UnsafePointer<Float>, t: Float, _ count: Int
) {
    for i in 0..<count { out[i] = corrupt[i] + t * (clean[i] - corrupt[i]) }
}

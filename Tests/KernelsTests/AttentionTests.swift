import Foundation
import Kernels
import XCTest

/// Causal attention over packed sequences with four query heads reading grouped-query key/value
/// slices: heads 0 and 1 share key/value head 0, head 2 uses key/value head 1, and head 3 takes its
/// value from head 1 but its key from a buffer of its own (as edge patching does).
private struct GroupedQueryAttention {
    static let heads = 4
    /// Key head of each query head; nil for the head with its own key buffer.
    static let keyGroup: [Int?] = [0, 0, 1, nil]
    static let valueGroup = [0, 0, 1, 1]

    let layout: SequenceLayout
    let headDim: Int
    /// `[rows, qStride]`, head `h` at column `h·headDim`, then padding.
    let q: [Float]
    /// `[rows, kvStride]`: key heads 0 and 1, value heads 0 and 1, then padding.
    let kv: [Float]
    /// `[rows, headDim]`: head 3's own key.
    let ownKey: [Float]

    var heads: Int { Self.heads }
    var rows: Int { layout.rows }
    var scale: Float { 1 / Float(headDim).squareRoot() }
    var qStride: Int { heads * headDim + 5 }
    var kvStride: Int { 4 * headDim + 3 }
    var outStride: Int { heads * headDim + 2 }

    /// Random inputs; `queryScale` sharpens the attention pattern.
    init(lengths: [Int], headDim: Int, queryScale: Double = 1, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        layout = SequenceLayout(lengths: lengths)
        self.headDim = headDim
        let rows = layout.rows
        q = rng.gaussianFloats(rows * (Self.heads * headDim + 5), deviation: queryScale)
        kv = rng.gaussianFloats(rows * (4 * headDim + 3))
        ownKey = rng.gaussianFloats(rows * headDim)
    }

    func keyColumn(_ h: Int) -> Int { (Self.keyGroup[h] ?? 0) * headDim }
    func valueColumn(_ h: Int) -> Int { (2 + Self.valueGroup[h]) * headDim }

    func querySlices(_ q: FloatBuffer) -> [HeadSlice] {
        (0..<heads).map { HeadSlice(q.pointer + $0 * headDim, stride: qStride) }
    }

    func keySlices(_ kv: FloatBuffer, _ ownKey: FloatBuffer) -> [HeadSlice] {
        (0..<heads).map { h in
            Self.keyGroup[h] == nil ? HeadSlice(ownKey.pointer, stride: headDim)
                : HeadSlice(kv.pointer + keyColumn(h), stride: kvStride)
        }
    }

    func valueSlices(_ kv: FloatBuffer) -> [HeadSlice] {
        (0..<heads).map { HeadSlice(kv.pointer + valueColumn($0), stride: kvStride) }
    }

    func outputSlices(_ out: FloatBuffer) -> [HeadSlice] {
        (0..<heads).map { HeadSlice(out.pointer + $0 * headDim, stride: outStride) }
    }

    /// Output padding value; the kernel must leave it alone.
    static let sentinel: Float = 4321

    /// `attentionForward` on the given inputs: the `[rows, outStride]` output and the probabilities.
    /// `only`: the heads to compute (nil: all).
    func forward(q: [Float]? = nil, kv: [Float]? = nil, ownKey: [Float]? = nil, only: [Int]? = nil) -> (out: FloatBuffer, probs: FloatBuffer) {
        let qb = FloatBuffer(q ?? self.q), kvb = FloatBuffer(kv ?? self.kv), ownb = FloatBuffer(ownKey ?? self.ownKey)
        let out = FloatBuffer([Float](repeating: Self.sentinel, count: rows * outStride))
        let probs = FloatBuffer([Float](repeating: .nan, count: heads * layout.attentionSize))
        attentionForward(outputSlices(out), probs.pointer, querySlices(qb), keySlices(kvb, ownb), valueSlices(kvb),
                         layout, scale: scale, headDim, heads: only)
        return (out, probs)
    }

    /// Head `h`'s `[length][headDim]` query, key and value rows of sequence `b`, from `Double` copies.
    func headRows(_ h: Int, sequence b: Int, q: [Double], kv: [Double], ownKey: [Double])
        -> (q: [[Double]], k: [[Double]], v: [[Double]]) {
        let rowRange = layout.offsets[b]..<layout.offsets[b] + layout.lengths[b], d = headDim
        let qs = rowRange.map { r in Array(q[r * qStride + h * d..<r * qStride + (h + 1) * d]) }
        let ks = rowRange.map { r in
            Self.keyGroup[h] == nil ? Array(ownKey[r * d..<(r + 1) * d])
                : Array(kv[r * kvStride + keyColumn(h)..<r * kvStride + keyColumn(h) + d])
        }
        let vs = rowRange.map { r in Array(kv[r * kvStride + valueColumn(h)..<r * kvStride + valueColumn(h) + d]) }
        return (qs, ks, vs)
    }

    /// `Σ ⟨dout, out⟩` over heads, sequences and rows, with `out` from `attentionReference`.
    func referenceLoss(dout: [Double], q: [Double], kv: [Double], ownKey: [Double]) -> Double {
        var loss = 0.0
        for h in 0..<heads {
            for b in 0..<layout.count {
                let x = headRows(h, sequence: b, q: q, kv: kv, ownKey: ownKey)
                let out = attentionReference(x.q, x.k, x.v, scale: Double(scale))
                for (t, row) in out.enumerated() {
                    let start = (layout.offsets[b] + t) * outStride + h * headDim
                    loss += dotProduct(Array(dout[start..<start + headDim]), row)
                }
            }
        }
        return loss
    }
}

/// `attentionForward` and `attentionBackward` against `attentionReference` and central differences.
final class AttentionTests: XCTestCase {
    func testForwardMatchesReference() {
        let configurations: [(lengths: [Int], headDim: Int, queryScale: Double)] = [
            ([1, 7, 33], 8, 1), ([1, 7, 33], 33, 1), ([64, 5], 64, 1),
            ([1, 7, 33], 8, 30),  // scores in the hundreds: needs the max subtracted
        ]
        for (index, configuration) in configurations.enumerated() {
            let a = GroupedQueryAttention(lengths: configuration.lengths, headDim: configuration.headDim,
                                          queryScale: configuration.queryScale, seed: 600 + UInt64(index))
            let (out, probs) = a.forward()
            let name = "attention \(configuration)"
            let q = a.q.map(Double.init), kv = a.kv.map(Double.init), ownKey = a.ownKey.map(Double.init)
            var expected = [Double](repeating: Double(GroupedQueryAttention.sentinel), count: out.count)
            var maxScore = 0.0
            for h in 0..<a.heads {
                for b in 0..<a.layout.count {
                    let x = a.headRows(h, sequence: b, q: q, kv: kv, ownKey: ownKey)
                    let reference = attentionReference(x.q, x.k, x.v, scale: Double(a.scale))
                    for (t, row) in reference.enumerated() {
                        let start = (a.layout.offsets[b] + t) * a.outStride + h * a.headDim
                        expected.replaceSubrange(start..<start + a.headDim, with: row)
                    }
                    // Probabilities: softmax of the causal scores, exact zeros above the diagonal.
                    let n = a.layout.lengths[b]
                    let block = h * a.layout.attentionSize + a.layout.attentionOffsets[b]
                    for t in 0..<n {
                        let scores = (0...t).map { dotProduct(x.q[t], x.k[$0]) * Double(a.scale) }
                        let rowSlice = (block + t * n..<block + (t + 1) * n).map { probs[$0] }
                        let rowMax = scores.map(abs).max()!, expectedRow = softmaxRow(scores)
                        assertClose(Array(rowSlice[0...t]), expectedRow, tolerance: { u in
                            1e-6 + 1e-5 * (1 + rowMax) * expectedRow[u]
                        }, "\(name): probabilities of head \(h), sequence \(b), row \(t)")
                        maxScore = max(maxScore, rowMax)
                        XCTAssertEqual(Array(rowSlice[(t + 1)...]), [Float](repeating: 0, count: n - t - 1),
                                       "\(name): probabilities above the diagonal, head \(h), sequence \(b), row \(t)")
                        XCTAssertEqual(rowSlice.reduce(0.0) { $0 + Double($1) }, 1, accuracy: 1e-5,
                                       "\(name): probability row sum, head \(h), sequence \(b), row \(t)")
                    }
                }
            }
            let valueMax = a.kv.map { abs(Double($0)) }.max()!
            assertClose(out.array, expected, tolerance: { i in
                i % a.outStride < a.heads * a.headDim ? 2e-6 * (1 + maxScore) * valueMax : 0
            }, "\(name): output")
        }
    }

    /// Runs the backward pass into pre-filled gradients and checks each input's gradient (the
    /// accumulated value minus the pre-filled one) against central differences of the reference loss.
    /// With `accumulate` false the gradients are pre-filled with NaN, which must all be overwritten.
    private func checkBackward(_ a: GroupedQueryAttention, directions: Int?, seed: UInt64, accumulate: Bool = true) {
        var rng = SeededRandom(seed: seed)
        let d = a.headDim, rows = a.rows, heads = a.heads
        let dout = rng.gaussianFloats(rows * a.outStride)
        let q = FloatBuffer(a.q), kv = FloatBuffer(a.kv), ownKey = FloatBuffer(a.ownKey)
        let out = FloatBuffer(count: rows * a.outStride), probs = FloatBuffer(count: heads * a.layout.attentionSize)
        attentionForward(a.outputSlices(out), probs.pointer, a.querySlices(q), a.keySlices(kv, ownKey),
                         a.valueSlices(kv), a.layout, scale: a.scale, d)

        func prefill(_ count: Int) -> [Float] { accumulate ? rng.gaussianFloats(count) : [Float](repeating: 0, count: count) }
        let previousQ = prefill(q.count)
        let previousK = (0..<heads).map { _ in prefill(rows * d) }
        let previousV = (0..<heads).map { _ in prefill(rows * d) }
        // NaN where a head's gradient goes (not in the query rows' padding, which nothing writes).
        func buffer(_ previous: [Float], stride: Int, used: Int) -> FloatBuffer {
            FloatBuffer(accumulate ? previous : previous.indices.map { $0 % stride < used ? .nan : 0 })
        }
        let dq = buffer(previousQ, stride: a.qStride, used: heads * d)
        let dk = previousK.map { buffer($0, stride: d, used: d) }, dv = previousV.map { buffer($0, stride: d, used: d) }
        let doutBuffer = FloatBuffer(dout)
        attentionBackward(a.querySlices(dq), dk.map { HeadSlice($0.pointer, stride: d) }, dv.map { HeadSlice($0.pointer, stride: d) },
                          a.outputSlices(doutBuffer), probs.pointer, a.querySlices(q), a.keySlices(kv, ownKey),
                          a.valueSlices(kv), a.layout, scale: a.scale, d, accumulate: accumulate)

        // Each head has its own key/value gradient; a shared slice's gradient is their sum.
        let gq = (0..<q.count).map { Double(dq[$0]) - Double(previousQ[$0]) }
        var gkv = [Double](repeating: 0, count: kv.count), gOwn = [Double](repeating: 0, count: ownKey.count)
        for h in 0..<heads {
            for r in 0..<rows {
                for i in 0..<d {
                    let dkValue = Double(dk[h][r * d + i]) - Double(previousK[h][r * d + i])
                    if GroupedQueryAttention.keyGroup[h] == nil {
                        gOwn[r * d + i] += dkValue
                    } else {
                        gkv[r * a.kvStride + a.keyColumn(h) + i] += dkValue
                    }
                    gkv[r * a.kvStride + a.valueColumn(h) + i] += Double(dv[h][r * d + i]) - Double(previousV[h][r * d + i])
                }
            }
        }
        let doutD = dout.map(Double.init), qD = q.doubles, kvD = kv.doubles, ownD = ownKey.doubles
        let name = "attentionBackward lengths \(a.layout.lengths), headDim \(d)"
        assertGradient(gq, of: { a.referenceLoss(dout: doutD, q: $0, kv: kvD, ownKey: ownD) }, at: qD,
                       tolerance: 1e-4, directions: directions, rng: &rng, "\(name): queries")
        assertGradient(gkv, of: { a.referenceLoss(dout: doutD, q: qD, kv: $0, ownKey: ownD) }, at: kvD,
                       tolerance: 1e-4, directions: directions, rng: &rng, "\(name): shared keys and values")
        assertGradient(gOwn, of: { a.referenceLoss(dout: doutD, q: qD, kv: kvD, ownKey: $0) }, at: ownD,
                       tolerance: 1e-4, directions: directions, rng: &rng, "\(name): head 3's own keys")
    }

    /// Computing some heads (the others are nodes a patched run replaces) writes exactly what the whole
    /// computation writes for them and leaves the other heads' outputs and probabilities untouched.
    func testSomeHeadsEqualThoseOfTheWholeComputationAndLeaveTheOthers() {
        let a = GroupedQueryAttention(lengths: [1, 7, 33], headDim: 8, seed: 650)
        let whole = a.forward(), some = a.forward(only: [1, 3])
        for h in 0..<a.heads {
            for r in 0..<a.rows {
                let columns = (r * a.outStride + h * a.headDim)..<(r * a.outStride + (h + 1) * a.headDim)
                let expected = [1, 3].contains(h) ? columns.map { whole.out[$0] } : [Float](repeating: GroupedQueryAttention.sentinel, count: a.headDim)
                XCTAssertEqual(columns.map { some.out[$0] }, expected, "head \(h), row \(r)")
            }
            let block = (h * a.layout.attentionSize)..<((h + 1) * a.layout.attentionSize)
            if [1, 3].contains(h) {
                XCTAssertEqual(block.map { some.probs[$0] }, block.map { whole.probs[$0] }, "probabilities of head \(h)")
            } else {
                XCTAssertTrue(block.allSatisfy { some.probs[$0].isNaN }, "probabilities of head \(h) are left alone")
            }
        }
    }

    /// Differentiating some heads (the others cut off: a run may not have computed them, so their
    /// probabilities are NaN here) gives what the whole backward pass gives for them and leaves the other
    /// heads' gradients untouched.
    func testBackwardOfSomeHeadsEqualsTheWholeAndReadsNoOtherHead() {
        let a = GroupedQueryAttention(lengths: [1, 7, 33], headDim: 8, seed: 740)
        let d = a.headDim, rows = a.rows, only = [1, 3]
        var rng = SeededRandom(seed: 741)
        let dout = FloatBuffer(rng.gaussianFloats(rows * a.outStride))
        let q = FloatBuffer(a.q), kv = FloatBuffer(a.kv), ownKey = FloatBuffer(a.ownKey)
        func backward(probs: FloatBuffer, heads: [Int]?) -> (dq: FloatBuffer, dk: [FloatBuffer], dv: [FloatBuffer]) {
            let dq = FloatBuffer([Float](repeating: GroupedQueryAttention.sentinel, count: rows * a.qStride))
            let dk = (0..<a.heads).map { _ in FloatBuffer([Float](repeating: GroupedQueryAttention.sentinel, count: rows * d)) }
            let dv = (0..<a.heads).map { _ in FloatBuffer([Float](repeating: GroupedQueryAttention.sentinel, count: rows * d)) }
            attentionBackward(a.querySlices(dq), dk.map { HeadSlice($0.pointer, stride: d) }, dv.map { HeadSlice($0.pointer, stride: d) },
                              a.outputSlices(dout), probs.pointer, a.querySlices(q), a.keySlices(kv, ownKey), a.valueSlices(kv),
                              a.layout, scale: a.scale, d, accumulate: false, heads: heads)
            return (dq, dk, dv)
        }
        let whole = backward(probs: a.forward().probs, heads: nil), some = backward(probs: a.forward(only: only).probs, heads: only)
        for h in 0..<a.heads {
            let queries: [Int] = (0..<rows).flatMap { (r: Int) -> Range<Int> in
                let first = r * a.qStride + h * d
                return first..<(first + d)
            }
            if only.contains(h) {
                assertBitwiseEqual(queries.map { some.dq[$0] }, queries.map { whole.dq[$0] }, "query gradients of head \(h)")
                assertBitwiseEqual(some.dk[h].array, whole.dk[h].array, "key gradients of head \(h)")
                assertBitwiseEqual(some.dv[h].array, whole.dv[h].array, "value gradients of head \(h)")
                XCTAssertGreaterThan(some.dk[h].array.map(abs).max()!, 0, "head \(h)")
            } else {
                let untouched = { (values: [Float]) in values.allSatisfy { $0 == GroupedQueryAttention.sentinel } }
                XCTAssertTrue(untouched(queries.map { some.dq[$0] }) && untouched(some.dk[h].array) && untouched(some.dv[h].array),
                              "head \(h)'s gradients are left alone")
            }
        }
    }

    func testBackwardMatchesFiniteDifferencesPerCoordinate() {
        checkBackward(GroupedQueryAttention(lengths: [1, 3, 6], headDim: 4, seed: 700), directions: nil, seed: 701)
    }

    func testBackwardOverwritesWhenNotAccumulating() {
        checkBackward(GroupedQueryAttention(lengths: [1, 3, 6], headDim: 4, seed: 730), directions: nil, seed: 731, accumulate: false)
    }

    func testBackwardMatchesFiniteDifferencesAlongDirections() {
        checkBackward(GroupedQueryAttention(lengths: [1, 7, 33], headDim: 8, seed: 710), directions: 3, seed: 711)
        checkBackward(GroupedQueryAttention(lengths: [33, 1], headDim: 33, queryScale: 3, seed: 720), directions: 3, seed: 721)
    }

    func testSequencesHeadsAndFutureTokensDoNotLeak() {
        let a = GroupedQueryAttention(lengths: [1, 7, 33], headDim: 8, seed: 800)
        let base = a.forward()
        let layout = a.layout
        var rng = SeededRandom(seed: 801)
        func perturbed(_ values: [Float], stride: Int, rows: [Int], columns: Range<Int>? = nil) -> [Float] {
            var copy = values
            for r in rows { for c in columns ?? 0..<stride { copy[r * stride + c] += 1 + rng.nextFloat() } }
            return copy
        }
        func outRows(_ out: FloatBuffer, _ rows: Range<Int>, columns: Range<Int>? = nil) -> [Float] {
            rows.flatMap { r in (columns ?? 0..<a.outStride).map { out[r * a.outStride + $0] } }
        }

        // Changing every input of sequences 0 and 2 leaves sequence 1's outputs and probabilities alone.
        let others = Array(0..<1) + Array(8..<41)
        let changed = a.forward(q: perturbed(a.q, stride: a.qStride, rows: others),
                                kv: perturbed(a.kv, stride: a.kvStride, rows: others),
                                ownKey: perturbed(a.ownKey, stride: a.headDim, rows: others))
        XCTAssertEqual(layout.offsets[1], 1)
        assertBitwiseEqual(outRows(changed.out, 1..<8), outRows(base.out, 1..<8), "sequence 1's outputs")
        for h in 0..<a.heads {
            let block = h * layout.attentionSize + layout.attentionOffsets[1]
            assertBitwiseEqual(Array(changed.probs.array[block..<block + 49]), Array(base.probs.array[block..<block + 49]),
                               "sequence 1's probabilities, head \(h)")
        }
        XCTAssertNotEqual(outRows(changed.out, 8..<41), outRows(base.out, 8..<41), "sequence 2 did change")

        // Changing row 20 of sequence 2 leaves its rows 0..<20 alone and changes every later row.
        let row20 = layout.offsets[2] + 20
        let future = a.forward(q: perturbed(a.q, stride: a.qStride, rows: [row20]),
                               kv: perturbed(a.kv, stride: a.kvStride, rows: [row20]),
                               ownKey: perturbed(a.ownKey, stride: a.headDim, rows: [row20]))
        assertBitwiseEqual(outRows(future.out, 0..<row20), outRows(base.out, 0..<row20), "rows before the changed token")
        for r in row20..<layout.rows {
            for h in 0..<a.heads {
                let columns = h * a.headDim..<(h + 1) * a.headDim
                XCTAssertNotEqual(outRows(future.out, r..<r + 1, columns: columns), outRows(base.out, r..<r + 1, columns: columns),
                                  "row \(r), head \(h) sees the changed token")
            }
        }

        // Changing head 0's queries changes only head 0's outputs.
        let head0 = a.forward(q: perturbed(a.q, stride: a.qStride, rows: Array(0..<layout.rows), columns: 0..<a.headDim))
        let rest = a.headDim..<a.outStride
        assertBitwiseEqual(outRows(head0.out, 0..<layout.rows, columns: rest), outRows(base.out, 0..<layout.rows, columns: rest),
                           "heads 1-3 after changing head 0's queries")
        XCTAssertNotEqual(outRows(head0.out, 1..<layout.rows, columns: 0..<a.headDim),
                          outRows(base.out, 1..<layout.rows, columns: 0..<a.headDim))
    }

    /// A run of each example's rows from `starts[b]` on, reading the earlier positions' keys and
    /// values from an `AttentionPrefix`, computes what the whole run computes at those rows: the same
    /// outputs and probabilities, and (with the loss on those rows only) the same gradients there.
    func testRunContinuingFromAPrefixEqualsTheWholeRun() {
        let a = GroupedQueryAttention(lengths: [5, 9, 12, 1], headDim: 8, seed: 900)
        let starts = [2, 0, 7, 0], d = a.headDim, heads = a.heads
        let suffix = SequenceLayout(lengths: zip(a.layout.lengths, starts).map { $0 - $1 }, starts: starts)
        // Full-run rows that the suffix run's rows are.
        let kept = (0..<a.layout.count).flatMap { b in a.layout.offsets[b] + starts[b]..<a.layout.offsets[b] + a.layout.lengths[b] }
        XCTAssertEqual(kept.count, suffix.rows)
        func gather(_ values: [Float], stride: Int) -> [Float] { kept.flatMap { values[$0 * stride..<($0 + 1) * stride] } }
        func gather(_ buffer: FloatBuffer, stride: Int) -> [Float] { gather(buffer.array, stride: stride) }
        let full = a.forward()
        let kvFull = FloatBuffer(a.kv), ownFull = FloatBuffer(a.ownKey)
        let prefix = AttentionPrefix(k: a.keySlices(kvFull, ownFull), v: a.valueSlices(kvFull), offsets: a.layout.offsets)
        let q = FloatBuffer(gather(a.q, stride: a.qStride)), kv = FloatBuffer(gather(a.kv, stride: a.kvStride))
        let ownKey = FloatBuffer(gather(a.ownKey, stride: d))
        let out = FloatBuffer(count: suffix.rows * a.outStride), probs = FloatBuffer(count: heads * suffix.attentionSize)
        attentionForward(a.outputSlices(out), probs.pointer, a.querySlices(q), a.keySlices(kv, ownKey), a.valueSlices(kv),
                         suffix, prefix: prefix, scale: a.scale, d)
        let written = (0..<out.count).filter { $0 % a.outStride < heads * d }
        assertBitwiseEqual(written.map { out[$0] }, written.map { gather(full.out, stride: a.outStride)[$0] }, "outputs")
        for h in 0..<heads {
            for b in 0..<suffix.count {
                let n = a.layout.lengths[b], m = suffix.lengths[b]
                for t in 0..<m {
                    let fullRow = h * a.layout.attentionSize + a.layout.attentionOffsets[b] + (starts[b] + t) * n
                    let row = h * suffix.attentionSize + suffix.attentionOffsets[b] + t * n
                    assertBitwiseEqual((row..<row + n).map { probs[$0] }, (fullRow..<fullRow + n).map { full.probs[$0] },
                                       "probabilities of head \(h), example \(b), row \(t)")
                }
            }
        }

        // Backward, with the output gradient zero on the prefix rows of the whole run.
        var rng = SeededRandom(seed: 901)
        let dSuffix = rng.gaussianFloats(suffix.rows * a.outStride)
        var dWhole = [Float](repeating: 0, count: a.rows * a.outStride)
        for (i, r) in kept.enumerated() { dWhole.replaceSubrange(r * a.outStride..<(r + 1) * a.outStride, with: dSuffix[i * a.outStride..<(i + 1) * a.outStride]) }
        func backward(_ layout: SequenceLayout, _ dout: [Float], q: FloatBuffer, kv: FloatBuffer, ownKey: FloatBuffer, probs: FloatBuffer,
                      prefix: AttentionPrefix?) -> (dq: FloatBuffer, dk: [FloatBuffer], dv: [FloatBuffer]) {
            let dq = FloatBuffer(count: layout.rows * a.qStride)
            let dk = (0..<heads).map { _ in FloatBuffer(count: layout.rows * d) }, dv = (0..<heads).map { _ in FloatBuffer(count: layout.rows * d) }
            let doutBuffer = FloatBuffer(dout)
            attentionBackward(a.querySlices(dq), dk.map { HeadSlice($0.pointer, stride: d) }, dv.map { HeadSlice($0.pointer, stride: d) },
                              a.outputSlices(doutBuffer), probs.pointer, a.querySlices(q), a.keySlices(kv, ownKey), a.valueSlices(kv),
                              layout, prefix: prefix, scale: a.scale, d, accumulate: false)
            withExtendedLifetime(doutBuffer) {}
            return (dq, dk, dv)
        }
        let whole = backward(a.layout, dWhole, q: FloatBuffer(a.q), kv: kvFull, ownKey: ownFull, probs: full.probs, prefix: nil)
        let part = backward(suffix, dSuffix, q: q, kv: kv, ownKey: ownKey, probs: probs, prefix: prefix)
        assertClose(part.dq.array, gather(whole.dq, stride: a.qStride).map(Double.init), tolerance: { _ in 1e-6 }, "query gradients")
        for h in 0..<heads {
            assertClose(part.dk[h].array, gather(whole.dk[h], stride: d).map(Double.init), tolerance: { _ in 1e-6 }, "key gradients, head \(h)")
            assertClose(part.dv[h].array, gather(whole.dv[h], stride: d).map(Double.init), tolerance: { _ in 1e-6 }, "value gradients, head \(h)")
        }
        XCTAssertGreaterThan(whole.dk[0].array.map(abs).max()!, 0)
    }
}

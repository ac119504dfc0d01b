/// Single-precision matrix multiply: a packed, register-blocked SIMD GEMM and its naive reference.
///
/// Matrices are row-major with a leading dimension (row stride). `gemm` computes
/// `C = op(A)·op(B)` or `C += op(A)·op(B)`, where `op(X)` is `X` or `Xᵀ`. The model uses three forms:
/// `A·Bᵀ` (a linear layer's forward: activations times a `[out, in]` weight), `A·B` (its input
/// gradient) and `Aᵀ·B` (a weight gradient).
///
/// The blocking follows Goto's scheme: `B` is packed into `kc × NR` column panels shared by all
/// threads, each thread packs an `mc × kc` block of `A` into `MR`-row panels, and an `MR × NR`
/// micro-kernel keeps its 24 accumulators (8 rows × 3 `SIMD16<Float>`) in registers: per step of
/// the depth it loads 3 vectors of B and broadcasts 8 elements of A for 24 fused multiply-adds
/// (an 8 × 32 kernel, 16 accumulators, ran 3–14 % slower at every model shape). Processors with
/// 8-float registers run the same tile in quarters (`GemmMicroKernel.narrow`).

/// Rows of `C` one micro-kernel call produces.
private let microRows = 8
/// Columns of `C` one micro-kernel call produces (three `SIMD16` vectors); every width of the
/// model's layers (576, 960, 1536, 3072) is a multiple.
private let microCols = 48
/// Largest depth of one packed block; the depth is cut into equal blocks no deeper than this
/// (576 → 3 × 192, 1536 → 8 × 192), so a 48-column panel of B (36 KB) stays in a 48 KB L1 cache.
private let blockDepth = 200
/// Rows of `A` packed together per work item (`mc`), a multiple of `microRows`.
private let blockRows = 96
/// Most columns of `B` packed together (`nc`, a multiple of `microCols`): 200 × 768 floats (600 KB)
/// fill less than a third of a 2 MB L2.
private let blockCols = 768

/// `C = op(A)·op(B)`, or `C += op(A)·op(B)` when `accumulate` is true.
///
/// - Parameters:
///   - c: output `[m, n]`, row stride `ldc`.
///   - a: `[m, k]` with row stride `lda`, or, when `transposeA`, stored as `[k, m]`.
///   - b: `[k, n]` with row stride `ldb`, or, when `transposeB`, stored as `[n, k]`.
///   - m, n, k: sizes of `op(A)` (`m × k`) and `op(B)` (`k × n`).
///   - microKernel: the packed path's register blocking (tests run both)
public func gemm(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool,
    _ m: Int, _ n: Int, _ k: Int, microKernel: GemmMicroKernel = .preferred
) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    // Few columns and a long depth with both operands contiguous along it (EAP's contraction of
    // sender differences with receiver gradients over T·d): dot products along the depth.
    if !transposeA && transposeB && n <= 64 && k >= 4 * dotBlockDepth {
        gemmDotProducts(c, ldc: ldc, a, lda: lda, b, ldb: ldb, accumulate: accumulate, m, n, k, splitB: false, wide: microKernel == .wide)
        return
    }
    // Few rows against a wide weight (the unembedding at each example's last token): stream B's rows
    // once, each against every row of A, instead of packing all of B for a handful of uses.
    if !transposeA && transposeB && m <= 128 && n >= 32 * m && k <= dotBlockDepth {
        gemmDotProducts(c, ldc: ldc, a, lda: lda, b, ldb: ldb, accumulate: accumulate, m, n, k, splitB: true, wide: microKernel == .wide)
        return
    }
    // Small products, and calls from inside a parallel iteration (which runs on its thread alone),
    // are blocked for one thread.
    gemmBlocked(c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                accumulate: accumulate, m, n, k, serial: m * n * k < 1 << 16 || WorkerPool.insideJob, wide: microKernel == .wide)
}

/// Depth of one block of the dot-product path: runs of 16 KB per row keep the prefetcher streaming.
private let dotBlockDepth = 4096

/// `C (+)= A·Bᵀ` as dot products along `k`, in tiles of 4 rows of A × 4 rows of B, each pair
/// accumulated in a vector register over a depth block; missing rows of a tile point at a zero block.
///
/// Two loop orders: for few columns and a long depth (`splitB` false) threads split A's rows and walk
/// the depth in blocks; for few rows against many columns (`splitB` true) threads split B's rows and
/// each tile runs over the whole depth, so every row of B is read once.
private func gemmDotProducts(
    _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, _ m: Int, _ n: Int, _ k: Int, splitB: Bool, wide: Bool
) {
    if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
    let depth = splitB ? k : dotBlockDepth
    let zeros = UnsafeMutablePointer<Float>.allocate(capacity: depth)
    zeros.initialize(repeating: 0, count: depth)
    defer { zeros.deallocate() }
    /// Adds the tile at rows `i0` of A, `j0` of B over depth `kb ..< kb + kc` into C.
    func tile(_ i0: Int, _ j0: Int, _ kb: Int, _ kc: Int, _ sums: UnsafeMutablePointer<Float>) {
        func rowA(_ i: Int) -> UnsafePointer<Float> { i < m ? a + i * lda + kb : UnsafePointer(zeros) }
        func rowB(_ j: Int) -> UnsafePointer<Float> { j < n ? b + j * ldb + kb : UnsafePointer(zeros) }
        let (a0, a1, a2, a3) = (rowA(i0), rowA(i0 + 1), rowA(i0 + 2), rowA(i0 + 3))
        let (b0, b1, b2, b3) = (rowB(j0), rowB(j0 + 1), rowB(j0 + 2), rowB(j0 + 3))
        if wide {
            dotTile(sums, a0, a1, a2, a3, b0, b1, b2, b3, kc)
        } else {
            // Four 2 × 2 quarters of the tile, each in 8 registers of 8 floats.
            dotQuarter(sums, a0, a1, b0, b1, kc)
            dotQuarter(sums + 2, a0, a1, b2, b3, kc)
            dotQuarter(sums + 8, a2, a3, b0, b1, kc)
            dotQuarter(sums + 10, a2, a3, b2, b3, kc)
        }
        for i in 0..<min(4, m - i0) {
            for j in 0..<min(4, n - j0) { c[(i0 + i) * ldc + j0 + j] += sums[i * 4 + j] }
        }
    }
    if splitB {
        parallelChunks((n + 3) / 4, minimumChunk: 64) { groups in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { sums in
                for group in groups {
                    for i0 in stride(from: 0, to: m, by: 4) { tile(i0, group * 4, 0, k, sums.baseAddress!) }
                }
            }
        }
    } else {
        parallelChunks((m + 3) / 4, minimumChunk: 2) { groups in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { sums in
                for kb in stride(from: 0, to: k, by: depth) {
                    for group in groups {
                        for j0 in stride(from: 0, to: n, by: 4) { tile(group * 4, j0, kb, min(depth, k - kb), sums.baseAddress!) }
                    }
                }
            }
        }
    }
}

/// `out[i·4 + j] = aᵢ · bⱼ` over `kc` floats for four rows of A and four of B.
@inline(__always)
private func dotTile(
    _ out: UnsafeMutablePointer<Float>, _ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>,
    _ a2: UnsafePointer<Float>, _ a3: UnsafePointer<Float>, _ b0: UnsafePointer<Float>, _ b1: UnsafePointer<Float>,
    _ b2: UnsafePointer<Float>, _ b3: UnsafePointer<Float>, _ kc: Int
) {
    var s00 = Vec(), s01 = Vec(), s02 = Vec(), s03 = Vec(), s10 = Vec(), s11 = Vec(), s12 = Vec(), s13 = Vec()
    var s20 = Vec(), s21 = Vec(), s22 = Vec(), s23 = Vec(), s30 = Vec(), s31 = Vec(), s32 = Vec(), s33 = Vec()
    var p = 0
    while p + 16 <= kc {
        let x0 = load(a0 + p), x1 = load(a1 + p), x2 = load(a2 + p), x3 = load(a3 + p)
        var y = load(b0 + p)
        s00 = s00.addingProduct(x0, y); s10 = s10.addingProduct(x1, y); s20 = s20.addingProduct(x2, y); s30 = s30.addingProduct(x3, y)
        y = load(b1 + p)
        s01 = s01.addingProduct(x0, y); s11 = s11.addingProduct(x1, y); s21 = s21.addingProduct(x2, y); s31 = s31.addingProduct(x3, y)
        y = load(b2 + p)
        s02 = s02.addingProduct(x0, y); s12 = s12.addingProduct(x1, y); s22 = s22.addingProduct(x2, y); s32 = s32.addingProduct(x3, y)
        y = load(b3 + p)
        s03 = s03.addingProduct(x0, y); s13 = s13.addingProduct(x1, y); s23 = s23.addingProduct(x2, y); s33 = s33.addingProduct(x3, y)
        p += 16
    }
    let sums = [s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33]
    for t in 0..<16 { out[t] = sums[t].sum() }
    let rows = [a0, a1, a2, a3], cols = [b0, b1, b2, b3]
    while p < kc {
        for i in 0..<4 { for j in 0..<4 { out[i * 4 + j] += rows[i][p] * cols[j][p] } }
        p += 1
    }
}

/// `out[i·4 + j] = xᵢ · yⱼ` over `kc` floats for two rows of A and two of B: `dotTile` for 8-float
/// registers. Each product is summed as two 8-lane halves that together are `dotTile`'s 16 lanes, and
/// reduced the same way, so both give the same bits.
@inline(__always)
private func dotQuarter(
    _ out: UnsafeMutablePointer<Float>, _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
    _ y0: UnsafePointer<Float>, _ y1: UnsafePointer<Float>, _ kc: Int
) {
    typealias V = SIMD8<Float>
    @inline(__always) func load8(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    // s{i}{j}{half}: lanes 0–7 and 8–15 of row i times row j.
    var s000 = V(), s001 = V(), s010 = V(), s011 = V(), s100 = V(), s101 = V(), s110 = V(), s111 = V()
    var p = 0
    while p + 16 <= kc {
        let a0 = load8(x0 + p), a1 = load8(x1 + p), b0 = load8(y0 + p), b1 = load8(y1 + p)
        s000 = s000.addingProduct(a0, b0); s010 = s010.addingProduct(a0, b1)
        s100 = s100.addingProduct(a1, b0); s110 = s110.addingProduct(a1, b1)
        let c0 = load8(x0 + p + 8), c1 = load8(x1 + p + 8), d0 = load8(y0 + p + 8), d1 = load8(y1 + p + 8)
        s001 = s001.addingProduct(c0, d0); s011 = s011.addingProduct(c0, d1)
        s101 = s101.addingProduct(c1, d0); s111 = s111.addingProduct(c1, d1)
        p += 16
    }
    out[0] = Vec(lowHalf: s000, highHalf: s001).sum()
    out[1] = Vec(lowHalf: s010, highHalf: s011).sum()
    out[4] = Vec(lowHalf: s100, highHalf: s101).sum()
    out[5] = Vec(lowHalf: s110, highHalf: s111).sum()
    while p < kc {
        out[0] += x0[p] * y0[p]; out[1] += x0[p] * y1[p]
        out[4] += x1[p] * y0[p]; out[5] += x1[p] * y1[p]
        p += 1
    }
}

/// The packed, blocked product; multithreaded over row blocks and column panels unless `serial`.
private func gemmBlocked(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool, _ m: Int, _ n: Int, _ k: Int, serial: Bool, wide: Bool
) {
    // Element (i, p) of op(A) is a[i * aRow + p * aCol]; element (p, j) of op(B) is b[p * bRow + j * bCol].
    let aRow = transposeA ? 1 : lda, aCol = transposeA ? lda : 1
    let bRow = transposeB ? 1 : ldb, bCol = transposeB ? ldb : 1

    // Depth and rows are cut into evenly sized blocks: a short last depth block costs C-tile traffic,
    // and an odd number of row blocks leaves a thread idle while the other finishes.
    let depthBlocks = (k + blockDepth - 1) / blockDepth
    let workers = serial ? 1 : Threading.workerCount
    let rowBlocks = roundUp((m + blockRows - 1) / blockRows, workers)
    // Row block i starts at rowStarts[i], a multiple of the micro-kernel's rows.
    let rowStarts = (0...rowBlocks).map { $0 == rowBlocks ? m : ($0 * m / rowBlocks) / microRows * microRows }

    // Columns are cut into equal blocks, multiples of the micro-kernel's columns, so that a packed
    // block of B (kc × nc floats) stays in L2 while every row block runs over it.
    let columnBlocks = (n + blockCols - 1) / blockCols
    let columnBlock = roundUp((n + columnBlocks - 1) / columnBlocks, microCols)
    let maxDepth = (k + depthBlocks - 1) / depthBlocks
    // A shallow B stored by rows is read in place: its 48-column panels are at most 12 KB whatever
    // their row stride. Other blocks, and partial panels, are packed.
    let direct = !transposeB && maxDepth <= directDepth
    let packedB = UnsafeMutablePointer<Float>.allocate(capacity: direct && n % microCols == 0 ? 0 : maxDepth * columnBlock)
    defer { packedB.deallocate() }

    // Work items: (row block, range of column panels). Columns are split too when there are few row
    // blocks, so both threads have work for skinny products. Each item packs its rows of A into its
    // own slot of `packedA`.
    let maxColumnSplits = serial ? 1 : max(1, (2 * workers + rowBlocks - 1) / rowBlocks)
    let panelSize = microRows * panelStride
    let itemSize = (0..<rowBlocks).map { (rowStarts[$0 + 1] - rowStarts[$0] + microRows - 1) / microRows }.max()! * panelSize
    let packedA = UnsafeMutablePointer<Float>.allocate(capacity: rowBlocks * maxColumnSplits * itemSize)
    defer { packedA.deallocate() }

    var jc = 0
    while jc < n {
        let nc = min(columnBlock, n - jc)
        let panels = (nc + microCols - 1) / microCols
        for depthBlock in 0..<depthBlocks {
            let pc = depthBlock * k / depthBlocks
            let kc = (depthBlock + 1) * k / depthBlocks - pc
            let firstDepthBlock = pc == 0 && !accumulate
            let packPanel = { (panel: Int) in
                let cols = min(microCols, nc - panel * microCols)
                if direct && cols == microCols { return }
                packPanelB(packedB + panel * kc * microCols, b + pc * bRow + (jc + panel * microCols) * bCol, bRow, bCol, kc, cols)
            }
            if serial { for p in 0..<panels { packPanel(p) } } else { parallelFor(panels, packPanel) }

            let columnSplits = min(panels, maxColumnSplits)
            let runItem = { (item: Int) in
                let rb = item / columnSplits, cs = item % columnSplits
                let i0 = rowStarts[rb], mc = rowStarts[rb + 1] - i0
                guard mc > 0 else { return }
                let p0 = cs * panels / columnSplits, p1 = (cs + 1) * panels / columnSplits
                let microPanels = (mc + microRows - 1) / microRows
                let packedA = packedA + item * itemSize
                for mp in 0..<microPanels {
                    packPanelA(packedA + mp * panelSize, a + (i0 + mp * microRows) * aRow + pc * aCol,
                               aRow, aCol, kc, min(microRows, mc - mp * microRows))
                }
                for panel in p0..<p1 {
                    let j0 = panel * microCols
                    let cols = min(microCols, nc - j0)
                    for mp in 0..<microPanels {
                        let rows = min(microRows, mc - mp * microRows)
                        let aPanel = packedA + mp * panelSize
                        let inPlace = direct && cols == microCols
                        let bPanel = inPlace ? b + pc * ldb + jc + j0 : UnsafePointer(packedB + panel * kc * microCols)
                        let bStride = inPlace ? ldb : microCols
                        microKernelTile(c + (i0 + mp * microRows) * ldc + jc + j0, ldc, rows, cols, overwrite: firstDepthBlock) {
                            out, ldo, overwrite in
                            if wide {
                                microKernel(out, ldo, aPanel, bPanel, bStride, kc, overwrite: overwrite)
                            } else {
                                microKernelQuarters(out, ldo, aPanel, bPanel, bStride, kc, overwrite: overwrite)
                            }
                        }
                    }
                }
            }
            let items = rowBlocks * columnSplits
            if serial { for i in 0..<items { runItem(i) } } else { parallelFor(items, runItem) }
        }
        jc += nc
    }
}

@inline(__always)
private func roundUp(_ x: Int, _ multiple: Int) -> Int { (x + multiple - 1) / multiple * multiple }

/// Deepest block of a row-major B that the micro-kernel reads in place instead of packing.
private let directDepth = 64

/// Row stride of a packed A panel (at least `blockDepth`): a compile-time constant, so the
/// micro-kernel reaches each of its eight rows through an immediate offset instead of a register.
private let panelStride = 208

/// Packs `rows` (≤ `microRows`) rows × `kc` (≤ `panelStride`) columns of op(A) as `[microRows][panelStride]`,
/// zero-padding rows.
@inline(__always)
private func packPanelA(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ rowStride: Int, _ colStride: Int,
    _ kc: Int, _ rows: Int
) {
    for i in 0..<rows {
        let d = dst + i &* panelStride
        if colStride == 1 {
            let s = src + i &* rowStride
            var p = 0
            while p + 16 <= kc { store(d + p, load(s + p)); p += 16 }
            while p < kc { d[p] = s[p]; p += 1 }
        } else {
            var s = src + i &* rowStride
            for p in 0..<kc {
                d[p] = s.pointee
                s += colStride
            }
        }
    }
    for i in rows..<microRows { (dst + i &* panelStride).update(repeating: 0, count: kc) }
}

/// Packs `kc` rows × `cols` (≤ `microCols`) columns of op(B) as `[kc][microCols]`, zero-padding columns.
@inline(__always)
private func packPanelB(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ rowStride: Int, _ colStride: Int,
    _ kc: Int, _ cols: Int
) {
    if cols == microCols && colStride == 1 {
        var s = src, d = dst
        for _ in 0..<kc {
            store(d, load(s))
            store(d + 16, load(s + 16))
            store(d + 32, load(s + 32))
            s += rowStride
            d += microCols
        }
        return
    }
    var dst = dst, src = src, kc = kc
    if cols == microCols && rowStride == 1 {
        // B stored transposed (a weight `[n, k]`): 16 × 16 blocks transposed in registers; the last
        // kc mod 16 rows go through the element loop below.
        while kc >= 16 {
            transposeBlock16(dst, microCols, src, colStride)
            transposeBlock16(dst + 16, microCols, src + 16 &* colStride, colStride)
            transposeBlock16(dst + 32, microCols, src + 32 &* colStride, colStride)
            dst += 16 &* microCols
            src += 16
            kc -= 16
        }
    }
    if cols < microCols { dst.update(repeating: 0, count: kc * microCols) }
    for j in 0..<cols {
        var s = src + j &* colStride, d = dst + j
        for _ in 0..<kc {
            d.pointee = s.pointee
            s += rowStride
            d += microCols
        }
    }
}

/// `dst[q][r] = src[r][q]` for a 16 × 16 block (rows `srcStride` and `dstStride` floats apart).
///
/// Four rounds of the perfect unshuffle — row `i` of the next round holds the even lanes of rows
/// `2i` and `2i + 1`, row `8 + i` their odd lanes — rotate each element's 8-bit (row, column)
/// address by one bit per round; after four its row and column have traded places.
@inline(__always)
private func transposeBlock16(
    _ dst: UnsafeMutablePointer<Float>, _ dstStride: Int, _ src: UnsafePointer<Float>, _ srcStride: Int
) {
    withUnsafeTemporaryAllocation(of: Vec.self, capacity: 32) { buffer in
        var from = buffer.baseAddress!, to = from + 16
        for r in 0..<16 { from[r] = load(src + r &* srcStride) }
        for _ in 0..<4 {
            for i in 0..<8 {
                let a = from[2 * i], b = from[2 * i + 1]
                to[i] = Vec(lowHalf: a.evenHalf, highHalf: b.evenHalf)
                to[8 + i] = Vec(lowHalf: a.oddHalf, highHalf: b.oddHalf)
            }
            swap(&from, &to)
        }
        for r in 0..<16 { store(dst + r &* dstStride, from[r]) }
    }
}

/// Runs `kernel` (which writes a full 8 × 48 tile) on C in place, or through a scratch tile at the
/// matrix edges.
@inline(__always)
private func microKernelTile(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ cols: Int, overwrite: Bool,
    _ kernel: (_ out: UnsafeMutablePointer<Float>, _ ldo: Int, _ overwrite: Bool) -> Void
) {
    if rows == microRows && cols == microCols {
        kernel(c, ldc, overwrite)
        return
    }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: microRows * microCols) { tile in
        let t = tile.baseAddress!
        kernel(t, microCols, true)
        for i in 0..<rows {
            let dst = c + i * ldc, src = t + i * microCols
            if overwrite {
                for j in 0..<cols { dst[j] = src[j] }
            } else {
                for j in 0..<cols { dst[j] += src[j] }
            }
        }
    }
}

/// `C[8, 48] (+)= packedA[8][panelStride] · B[kc][48]` (B's rows `bStride` floats apart), accumulators
/// held in 24 vector registers.
@inline(__always)
private func microKernel(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
    _ bStride: Int, _ kc: Int, overwrite: Bool
) {
    var c00 = Vec(), c01 = Vec(), c02 = Vec(), c10 = Vec(), c11 = Vec(), c12 = Vec()
    var c20 = Vec(), c21 = Vec(), c22 = Vec(), c30 = Vec(), c31 = Vec(), c32 = Vec()
    var c40 = Vec(), c41 = Vec(), c42 = Vec(), c50 = Vec(), c51 = Vec(), c52 = Vec()
    var c60 = Vec(), c61 = Vec(), c62 = Vec(), c70 = Vec(), c71 = Vec(), c72 = Vec()
    var ap = packedA, bp = packedB
    for _ in 0..<kc {
        let b0 = load(bp), b1 = load(bp + 16), b2 = load(bp + 32)
        var x = Vec(repeating: ap[0])
        c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1); c02 = c02.addingProduct(x, b2)
        x = Vec(repeating: ap[panelStride])
        c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1); c12 = c12.addingProduct(x, b2)
        x = Vec(repeating: ap[2 * panelStride])
        c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1); c22 = c22.addingProduct(x, b2)
        x = Vec(repeating: ap[3 * panelStride])
        c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1); c32 = c32.addingProduct(x, b2)
        x = Vec(repeating: ap[4 * panelStride])
        c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1); c42 = c42.addingProduct(x, b2)
        x = Vec(repeating: ap[5 * panelStride])
        c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1); c52 = c52.addingProduct(x, b2)
        x = Vec(repeating: ap[6 * panelStride])
        c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1); c62 = c62.addingProduct(x, b2)
        x = Vec(repeating: ap[7 * panelStride])
        c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1); c72 = c72.addingProduct(x, b2)
        ap += 1
        bp += bStride
    }
    storeTile(c, ldc, overwrite, (c00, c01, c02), (c10, c11, c12), (c20, c21, c22), (c30, c31, c32),
              (c40, c41, c42), (c50, c51, c52), (c60, c61, c62), (c70, c71, c72))
}

/// The same 8 × 48 tile as four 4 × 24 quarters, for 8-float registers (AVX2's 16): each quarter
/// holds 12 `SIMD8` accumulators and per step of the depth loads 3 vectors of B and broadcasts 4
/// elements of A. Each element is summed over the depth in the same order as by `microKernel`.
@inline(__always)
private func microKernelQuarters(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
    _ bStride: Int, _ kc: Int, overwrite: Bool
) {
    for rows in 0..<2 {
        for cols in 0..<2 {
            quarterKernel(c + rows * 4 * ldc + cols * 24, ldc, packedA + rows * 4 * panelStride, packedB + cols * 24, bStride, kc,
                          overwrite: overwrite)
        }
    }
}

/// `C[4, 24] (+)= packedA[4][panelStride] · B[kc][24]` in 12 `SIMD8` accumulators.
@inline(__always)
private func quarterKernel(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
    _ bStride: Int, _ kc: Int, overwrite: Bool
) {
    typealias V = SIMD8<Float>
    @inline(__always) func load8(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: V) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    var c00 = V(), c01 = V(), c02 = V(), c10 = V(), c11 = V(), c12 = V()
    var c20 = V(), c21 = V(), c22 = V(), c30 = V(), c31 = V(), c32 = V()
    var ap = packedA, bp = packedB
    for _ in 0..<kc {
        let b0 = load8(bp), b1 = load8(bp + 8), b2 = load8(bp + 16)
        var x = V(repeating: ap[0])
        c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1); c02 = c02.addingProduct(x, b2)
        x = V(repeating: ap[panelStride])
        c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1); c12 = c12.addingProduct(x, b2)
        x = V(repeating: ap[2 * panelStride])
        c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1); c22 = c22.addingProduct(x, b2)
        x = V(repeating: ap[3 * panelStride])
        c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1); c32 = c32.addingProduct(x, b2)
        ap += 1
        bp += bStride
    }
    @inline(__always) func put(_ row: Int, _ v0: V, _ v1: V, _ v2: V) {
        let p = c + row * ldc
        if overwrite {
            store8(p, v0); store8(p + 8, v1); store8(p + 16, v2)
        } else {
            store8(p, load8(p) + v0); store8(p + 8, load8(p + 8) + v1); store8(p + 16, load8(p + 16) + v2)
        }
    }
    put(0, c00, c01, c02); put(1, c10, c11, c12); put(2, c20, c21, c22); put(3, c30, c31, c32)
}

/// Writes (or adds) eight rows of three vectors into C.
@inline(__always)
private func storeTile(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ overwrite: Bool,
    _ r0: (Vec, Vec, Vec), _ r1: (Vec, Vec, Vec), _ r2: (Vec, Vec, Vec), _ r3: (Vec, Vec, Vec),
    _ r4: (Vec, Vec, Vec), _ r5: (Vec, Vec, Vec), _ r6: (Vec, Vec, Vec), _ r7: (Vec, Vec, Vec)
) {
    @inline(__always) func put(_ row: Int, _ v: (Vec, Vec, Vec)) {
        let p = c + row * ldc
        if overwrite {
            store(p, v.0); store(p + 16, v.1); store(p + 32, v.2)
        } else {
            store(p, load(p) + v.0); store(p + 16, load(p + 16) + v.1); store(p + 32, load(p + 32) + v.2)
        }
    }
    put(0, r0); put(1, r1); put(2, r2); put(3, r3); put(4, r4); put(5, r5); put(6, r6); put(7, r7)
}

/// Whether `C += A·B` with `nonzeros` of A's `count` entries nonzero is cheaper as `gemmSparseA` than
/// as `gemm`: at most one in eight (the packed GEMM does several times more multiply-adds per second
/// than `axpy`, which streams a row of B from memory for every nonzero).
public func prefersSparseA(nonzeros: Int, of count: Int) -> Bool { 8 * nonzeros <= count }

/// `C (+)= A·B` for an `A` that is mostly zeros: one `axpy` of a row of B per nonzero of A, the columns
/// split between the workers. Rows of C whose row of A is all zeros are left as they are when
/// `accumulate` is true (they need not hold numbers).
///
/// - Parameters:
///   - c: output `[m, n]`, row stride `ldc`
///   - a: `[m, k]`, row stride `lda`
///   - b: `[k, n]`, row stride `ldb`
public func gemmSparseA(
    _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
    accumulate: Bool, _ m: Int, _ n: Int, _ k: Int
) {
    // Per row of A, its nonzero entries (column, value).
    let nonzeros = (0..<m).map { i in (0..<k).compactMap { p in a[i * lda + p] != 0 ? (p, a[i * lda + p]) : nil } }
    let work = nonzeros.reduce(0) { $0 + max($1.count, 1) } * n
    let body = { (columns: Range<Int>) in
        for i in 0..<m {
            let out = c + i * ldc + columns.lowerBound
            if !accumulate { out.update(repeating: 0, count: columns.count) }
            for (p, value) in nonzeros[i] { axpy(out, value, b + p * ldb + columns.lowerBound, columns.count) }
        }
    }
    if work < 1 << 16 || WorkerPool.insideJob { body(0..<n) } else { parallelChunks(n, minimumChunk: 1024, body) }
}

/// Naive triple-loop reference for `gemm`, accumulating in `Double`; for tests.
public func gemmReference(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool,
    _ m: Int, _ n: Int, _ k: Int
) {
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(x) * Double(y)
            }
            c[i * ldc + j] = Float(sum) + (accumulate ? c[i * ldc + j] : 0)
        }
    }
}

/// A linear layer's forward: `out[t, o] = Σᵢ inp[t, i] · weight[o, i] + bias[o]`.
///
/// - Parameters:
///   - out: `[rows, outFeatures]`
///   - inp: `[rows, inFeatures]`
///   - weight: `[outFeatures, inFeatures]` (PyTorch `Linear` / GGUF layout)
///   - bias: `[outFeatures]` or nil
public func matmulForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ bias: UnsafePointer<Float>?, _ rows: Int, _ inFeatures: Int, _ outFeatures: Int
) {
    gemm(out, ldc: outFeatures, inp, lda: inFeatures, transposeA: false, weight, ldb: inFeatures, transposeB: true,
         accumulate: false, rows, outFeatures, inFeatures)
    if let bias { addBias(out, bias, rows, outFeatures) }
}

/// A linear layer's input gradient: `dinp[t, i] += Σₒ dout[t, o] · weight[o, i]` (`=` when `accumulate` is false).
///
/// - Parameters:
///   - dinp: `[rows, inFeatures]`, accumulated into
///   - dout: `[rows, outFeatures]`
///   - weight: `[outFeatures, inFeatures]`
public func matmulBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ rows: Int, _ inFeatures: Int, _ outFeatures: Int, accumulate: Bool = true
) {
    gemm(dinp, ldc: inFeatures, dout, lda: outFeatures, transposeA: false, weight, ldb: inFeatures, transposeB: false,
         accumulate: accumulate, rows, inFeatures, outFeatures)
}

/// `matmulBackward` for a `dout` that is mostly zeros (logit_diff's gradient of the logits has two
/// nonzeros per row): each nonzero adds its multiple of one row of `weight`, so only those rows are
/// read. When more than one in 64 of `dout` is nonzero it runs the dense product instead.
///
/// - Parameters:
///   - dinp: `[rows, inFeatures]`, accumulated into
///   - dout: `[rows, outFeatures]`
///   - weight: `[outFeatures, inFeatures]`
public func matmulBackwardSparse(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ rows: Int, _ inFeatures: Int, _ outFeatures: Int, accumulate: Bool = true
) {
    // Per row, the columns where dout is nonzero; the scan stops as soon as there are too many.
    var nonzeros: [[Int]] = [], found = 0
    scan: for t in 0..<rows {
        var columns: [Int] = []
        for o in 0..<outFeatures where dout[t * outFeatures + o] != 0 {
            found += 1
            if found * 64 > rows * outFeatures { break scan }
            columns.append(o)
        }
        nonzeros.append(columns)
    }
    guard nonzeros.count == rows else {
        matmulBackward(dinp, dout, weight, rows, inFeatures, outFeatures, accumulate: accumulate)
        return
    }
    parallelFor(rows) { t in
        let row = dinp + t * inFeatures
        if !accumulate { row.update(repeating: 0, count: inFeatures) }
        for o in nonzeros[t] { axpy(row, dout[t * outFeatures + o], weight + o * inFeatures, inFeatures) }
    }
}

/// Adds `bias[o]` to every row of `out[rows, features]` (rows `rowStride` floats apart, default `features`).
public func addBias(
    _ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ rows: Int, _ features: Int, rowStride: Int? = nil
) {
    let stride = rowStride ?? features
    for t in 0..<rows {
        let row = out + t * stride
        for o in 0..<features { row[o] += bias[o] }
    }
}

/// Single-precision matrix multiply: a packed, register-blocked SIMD GEMM and its naive reference.
///
/// Matrices are row-major with a leading dimension (row stride). `gemm` computes
/// `C = op(A)·op(B)` or `C += op(A)·op(B)`, where `op(X)` is `X` or `Xᵀ`. The model uses three forms:
/// `A·Bᵀ` (a linear layer's forward: activations times a `[out, in]` weight), `A·B` (its input
/// gradient) and `Aᵀ·B` (a weight gradient).
///
/// The blocking follows Goto's scheme: `B` is packed into `kc × NR` column panels shared by all
/// threads, each thread packs an `mc × kc` block of `A` into `MR`-row panels, and an `MR × NR`
/// micro-kernel keeps its 16 accumulators (8 rows × 2 `SIMD16<Float>`) in registers.

private typealias Vec = SIMD16<Float>

/// Rows of `C` one micro-kernel call produces.
private let microRows = 8
/// Columns of `C` one micro-kernel call produces (two `SIMD16` vectors).
private let microCols = 32
/// Depth of one packed block (`kc`).
private let blockDepth = 256
/// Rows of `A` packed together per work item (`mc`), a multiple of `microRows`.
private let blockRows = 96
/// Columns of `B` packed together (`nc`), a multiple of `microCols`.
private let blockCols = 2048

@inline(__always)
private func load(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always)
private func store(_ p: UnsafeMutablePointer<Float>, _ v: Vec) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// `C = op(A)·op(B)`, or `C += op(A)·op(B)` when `accumulate` is true.
///
/// - Parameters:
///   - c: output `[m, n]`, row stride `ldc`.
///   - a: `[m, k]` with row stride `lda`, or, when `transposeA`, stored as `[k, m]`.
///   - b: `[k, n]` with row stride `ldb`, or, when `transposeB`, stored as `[n, k]`.
///   - m, n, k: sizes of `op(A)` (`m × k`) and `op(B)` (`k × n`).
public func gemm(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool,
    _ m: Int, _ n: Int, _ k: Int
) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    // Short, wide-depth products (EAP's receivers × senders contraction over T·d) split the depth
    // across threads, each into a private copy of C, then add the copies.
    let workers = Threading.workerCount
    if workers > 1 && m * n <= 1 << 16 && k >= 8 * blockDepth * workers {
        gemmSplitDepth(c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                       accumulate: accumulate, m, n, k, parts: workers)
        return
    }
    gemmBlocked(c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                accumulate: accumulate, m, n, k, serial: m * n * k < 1 << 16)
}

/// `gemm` with the depth `k` cut into `parts` slices computed in parallel, each single-threaded.
private func gemmSplitDepth(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool, _ m: Int, _ n: Int, _ k: Int, parts: Int
) {
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: parts * m * n)
    defer { partials.deallocate() }
    parallelFor(parts) { part in
        let p0 = part * k / parts, p1 = (part + 1) * k / parts
        let aStart = transposeA ? a + p0 * lda : a + p0
        let bStart = transposeB ? b + p0 : b + p0 * ldb
        gemmBlocked(partials + part * m * n, ldc: n, aStart, lda: lda, transposeA: transposeA, bStart, ldb: ldb,
                    transposeB: transposeB, accumulate: false, m, n, p1 - p0, serial: true)
    }
    for i in 0..<m {
        let row = c + i * ldc
        if !accumulate { row.update(repeating: 0, count: n) }
        for part in 0..<parts { axpy(row, 1, partials + part * m * n + i * n, n) }
    }
}

/// The packed, blocked product; multithreaded over row blocks and column panels unless `serial`.
private func gemmBlocked(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
    accumulate: Bool, _ m: Int, _ n: Int, _ k: Int, serial: Bool
) {
    // Element (i, p) of op(A) is a[i * aRow + p * aCol]; element (p, j) of op(B) is b[p * bRow + j * bCol].
    let aRow = transposeA ? 1 : lda, aCol = transposeA ? lda : 1
    let bRow = transposeB ? 1 : ldb, bCol = transposeB ? ldb : 1

    let packedB = UnsafeMutablePointer<Float>.allocate(capacity: blockDepth * min(blockCols, roundUp(n, microCols)))
    defer { packedB.deallocate() }

    var jc = 0
    while jc < n {
        let nc = min(blockCols, n - jc)
        let panels = (nc + microCols - 1) / microCols
        var pc = 0
        while pc < k {
            let kc = min(blockDepth, k - pc)
            let firstDepthBlock = pc == 0 && !accumulate
            let packPanel = { (panel: Int) in
                packPanelB(packedB + panel * kc * microCols, b + pc * bRow + (jc + panel * microCols) * bCol,
                           bRow, bCol, kc, min(microCols, nc - panel * microCols))
            }
            if serial { for p in 0..<panels { packPanel(p) } } else { parallelFor(panels, packPanel) }

            // Work items: (row block, range of column panels). Split columns too when there are
            // few row blocks, so both threads have work for skinny products.
            let rowBlocks = (m + blockRows - 1) / blockRows
            let columnSplits = serial ? 1 : max(1, min(panels, (2 * Threading.workerCount + rowBlocks - 1) / rowBlocks))
            let runItem = { (item: Int) in
                let rb = item / columnSplits, cs = item % columnSplits
                let i0 = rb * blockRows, mc = min(blockRows, m - i0)
                let p0 = cs * panels / columnSplits, p1 = (cs + 1) * panels / columnSplits
                let microPanels = (mc + microRows - 1) / microRows
                let packedA = UnsafeMutablePointer<Float>.allocate(capacity: microPanels * kc * microRows)
                defer { packedA.deallocate() }
                for mp in 0..<microPanels {
                    packPanelA(packedA + mp * kc * microRows, a + (i0 + mp * microRows) * aRow + pc * aCol,
                               aRow, aCol, kc, min(microRows, mc - mp * microRows))
                }
                for panel in p0..<p1 {
                    let j0 = panel * microCols
                    let cols = min(microCols, nc - j0)
                    for mp in 0..<microPanels {
                        let rows = min(microRows, mc - mp * microRows)
                        let cTile = c + (i0 + mp * microRows) * ldc + jc + j0
                        microKernelTile(cTile, ldc, packedA + mp * kc * microRows, packedB + panel * kc * microCols,
                                        kc, rows, cols, overwrite: firstDepthBlock)
                    }
                }
            }
            let items = rowBlocks * columnSplits
            if serial { for i in 0..<items { runItem(i) } } else { parallelFor(items, runItem) }
            pc += kc
        }
        jc += nc
    }
}

@inline(__always)
private func roundUp(_ x: Int, _ multiple: Int) -> Int { (x + multiple - 1) / multiple * multiple }

/// Packs `rows` (≤ `microRows`) rows × `kc` columns of op(A) as `[kc][microRows]`, zero-padding rows.
@inline(__always)
private func packPanelA(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ rowStride: Int, _ colStride: Int,
    _ kc: Int, _ rows: Int
) {
    if rows < microRows { dst.update(repeating: 0, count: kc * microRows) }
    if colStride == 1 {
        for i in 0..<rows {
            let s = src + i * rowStride
            for p in 0..<kc { dst[p * microRows + i] = s[p] }
        }
    } else {
        for p in 0..<kc {
            let s = src + p * colStride
            for i in 0..<rows { dst[p * microRows + i] = s[i * rowStride] }
        }
    }
}

/// Packs `kc` rows × `cols` (≤ `microCols`) columns of op(B) as `[kc][microCols]`, zero-padding columns.
@inline(__always)
private func packPanelB(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ rowStride: Int, _ colStride: Int,
    _ kc: Int, _ cols: Int
) {
    if cols == microCols && colStride == 1 {
        for p in 0..<kc {
            let s = src + p * rowStride, d = dst + p * microCols
            store(d, load(s))
            store(d + 16, load(s + 16))
        }
        return
    }
    if cols < microCols { dst.update(repeating: 0, count: kc * microCols) }
    if rowStride == 1 {
        for j in 0..<cols {
            let s = src + j * colStride
            for p in 0..<kc { dst[p * microCols + j] = s[p] }
        }
    } else {
        for p in 0..<kc {
            let s = src + p * rowStride
            for j in 0..<cols { dst[p * microCols + j] = s[j * colStride] }
        }
    }
}

/// Runs the micro-kernel on a full tile in place, or through a scratch tile at the matrix edges.
@inline(__always)
private func microKernelTile(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
    _ kc: Int, _ rows: Int, _ cols: Int, overwrite: Bool
) {
    if rows == microRows && cols == microCols {
        microKernel(c, ldc, packedA, packedB, kc, overwrite: overwrite)
        return
    }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: microRows * microCols) { tile in
        let t = tile.baseAddress!
        microKernel(t, microCols, packedA, packedB, kc, overwrite: true)
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

/// `C[8, 32] (+)= packedA[kc][8]ᵀ · packedB[kc][32]`, accumulators held in 16 vector registers.
@inline(__always)
private func microKernel(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ packedA: UnsafePointer<Float>, _ packedB: UnsafePointer<Float>,
    _ kc: Int, overwrite: Bool
) {
    var c00 = Vec(), c01 = Vec(), c10 = Vec(), c11 = Vec(), c20 = Vec(), c21 = Vec(), c30 = Vec(), c31 = Vec()
    var c40 = Vec(), c41 = Vec(), c50 = Vec(), c51 = Vec(), c60 = Vec(), c61 = Vec(), c70 = Vec(), c71 = Vec()
    var ap = packedA, bp = packedB
    for _ in 0..<kc {
        let b0 = load(bp), b1 = load(bp + 16)
        var x = Vec(repeating: ap[0])
        c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
        x = Vec(repeating: ap[1])
        c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
        x = Vec(repeating: ap[2])
        c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
        x = Vec(repeating: ap[3])
        c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
        x = Vec(repeating: ap[4])
        c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
        x = Vec(repeating: ap[5])
        c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
        x = Vec(repeating: ap[6])
        c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
        x = Vec(repeating: ap[7])
        c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
        ap += microRows
        bp += microCols
    }
    @inline(__always) func put(_ row: Int, _ v0: Vec, _ v1: Vec) {
        let p = c + row * ldc
        if overwrite {
            store(p, v0); store(p + 16, v1)
        } else {
            store(p, load(p) + v0); store(p + 16, load(p + 16) + v1)
        }
    }
    put(0, c00, c01); put(1, c10, c11); put(2, c20, c21); put(3, c30, c31)
    put(4, c40, c41); put(5, c50, c51); put(6, c60, c61); put(7, c70, c71)
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

/// A linear layer's input gradient: `dinp[t, i] += Σₒ dout[t, o] · weight[o, i]`.
///
/// - Parameters:
///   - dinp: `[rows, inFeatures]`, accumulated into
///   - dout: `[rows, outFeatures]`
///   - weight: `[outFeatures, inFeatures]`
public func matmulBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    _ rows: Int, _ inFeatures: Int, _ outFeatures: Int
) {
    gemm(dinp, ldc: inFeatures, dout, lda: outFeatures, transposeA: false, weight, ldb: inFeatures, transposeB: false,
         accumulate: true, rows, inFeatures, outFeatures)
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

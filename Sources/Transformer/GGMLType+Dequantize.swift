/// Dequantization of ggml blocks to Float32, following ggml's reference definitions
/// (`dequantize_row_*` in ggml-quants.c, mirrored by gguf-py's `gguf.quants`) operation by
/// operation, e.g. `(d · scale) · q − d_min · min` for Q4_K.
///
/// Every product here is exact in Float32: f16 scales carry at most 11 significant bits and the
/// integer factors at most 12 more (Q6_K: 7-bit scale × 5-bit value), so each element is rounded
/// at most once, by the final add or subtract. The results are therefore bit-identical to ggml's
/// and gguf-py's whatever the grouping of the products or the use of fused multiply-add.
/// GGUFTests checks every type against gguf-py bit for bit.

import Kernels

extension GGMLType {
    /// Elements below which a conversion runs on the calling thread alone.
    private static let elementsPerTask = 1 << 16

    /// Converts `count` elements (a multiple of `blockSize`) stored at `src` in this type to Float32.
    ///
    /// Large conversions are split across the worker threads by whole blocks; every output
    /// element depends on its own block only, so the result does not depend on the split.
    ///
    /// - Parameters:
    ///   - dst: `[count]` output
    ///   - src: `count / blockSize` blocks of `bytesPerBlock` bytes
    public func dequantize(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafeRawPointer, _ count: Int) {
        let blocks = count / blockSize
        parallelChunks(blocks, minimumChunk: max(1, Self.elementsPerTask / blockSize)) { range in
            dequantizeBlocks(dst + range.lowerBound * blockSize, src + range.lowerBound * bytesPerBlock, range.count)
        }
    }

    /// Converts `blocks` whole blocks at `src` to `blocks × blockSize` floats at `dst`.
    private func dequantizeBlocks(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafeRawPointer, _ blocks: Int) {
        switch self {
        case .f32:
            for i in 0..<blocks { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<blocks { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<blocks {
                let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .q8_0:
            for b in 0..<blocks { dequantizeQ8_0(dst + 32 * b, src + 34 * b) }
        case .q4_0:
            for b in 0..<blocks { dequantizeQ4_0(dst + 32 * b, src + 18 * b) }
        case .q4_1:
            for b in 0..<blocks { dequantizeQ4_1(dst + 32 * b, src + 20 * b) }
        case .q4_K:
            for b in 0..<blocks { dequantizeQ4_K(dst + 256 * b, src + 144 * b) }
        case .q5_K:
            for b in 0..<blocks { dequantizeQ5_K(dst + 256 * b, src + 176 * b) }
        case .q6_K:
            for b in 0..<blocks { dequantizeQ6_K(dst + 256 * b, src + 210 * b) }
        }
    }
}

/// The IEEE half at byte `offset`, widened exactly.
@inline(__always)
private func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

/// Q8_0: `y = d · q` with 32 signed bytes per f16 scale.
@inline(__always)
private func dequantizeQ8_0(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0)
    let qs = (x + 2).assumingMemoryBound(to: Int8.self)
    for j in 0..<32 { y[j] = Float(qs[j]) * d }
}

/// Q4_0: `y = d · (q − 8)`; byte j holds element j (low nibble) and j + 16 (high nibble).
@inline(__always)
private func dequantizeQ4_0(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0)
    let qs = (x + 2).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        y[j] = d * Float(Int32(qs[j] & 0x0F) - 8)
        y[j + 16] = d * Float(Int32(qs[j] >> 4) - 8)
    }
}

/// Q4_1: `y = d · q + m` (rounded after the product), nibbles laid out as in Q4_0.
@inline(__always)
private func dequantizeQ4_1(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0), m = half(x, 2)
    let qs = (x + 4).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        y[j] = Float(qs[j] & 0x0F) * d + m
        y[j + 16] = Float(qs[j] >> 4) * d + m
    }
}

/// The 6-bit scale and min of sub-block `j` (0..<8) from the 12 packed bytes of a Q4_K/Q5_K block.
@inline(__always)
private func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (scale: UInt8, min: UInt8) {
    if j < 4 {
        return (q[j] & 63, q[j + 4] & 63)
    }
    return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
}

/// Q4_K: 8 sub-blocks of 32, each `y = (d · scale) · q − d_min · min` with 6-bit scales and mins.
@inline(__always)
private func dequantizeQ4_K(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0), dmin = half(x, 2)
    let scales = (x + 4).assumingMemoryBound(to: UInt8.self)
    var q = (x + 16).assumingMemoryBound(to: UInt8.self)
    var out = y
    for pair in 0..<4 {
        let (sc1, m1) = scaleMinK4(2 * pair, scales)
        let (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
        let d1 = d * Float(sc1), min1 = dmin * Float(m1)
        let d2 = d * Float(sc2), min2 = dmin * Float(m2)
        for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
        for l in 0..<32 { out[32 + l] = d2 * Float(q[l] >> 4) - min2 }
        q += 32
        out += 64
    }
}

/// Q5_K: as Q4_K with a fifth bit per element from the 32 `qh` bytes (bit j for sub-block j).
@inline(__always)
private func dequantizeQ5_K(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0), dmin = half(x, 2)
    let scales = (x + 4).assumingMemoryBound(to: UInt8.self)
    let qh = (x + 16).assumingMemoryBound(to: UInt8.self)
    var ql = (x + 48).assumingMemoryBound(to: UInt8.self)
    var out = y
    for pair in 0..<4 {
        let (sc1, m1) = scaleMinK4(2 * pair, scales)
        let (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
        let d1 = d * Float(sc1), min1 = dmin * Float(m1)
        let d2 = d * Float(sc2), min2 = dmin * Float(m2)
        let bit1 = UInt32(2 * pair), bit2 = UInt32(2 * pair + 1)
        for l in 0..<32 { out[l] = d1 * Float(UInt32(ql[l] & 0x0F) | (UInt32(qh[l]) >> bit1 & 1) << 4) - min1 }
        for l in 0..<32 { out[32 + l] = d2 * Float(UInt32(ql[l] >> 4) | (UInt32(qh[l]) >> bit2 & 1) << 4) - min2 }
        ql += 32
        out += 64
    }
}

/// Q6_K: 16 sub-blocks of 16 with int8 scales, `y = (d · scale) · (q − 32)`. Each half of the
/// block (128 elements, 8 sub-blocks) takes its 6-bit values from 64 `ql` bytes (low nibbles
/// then high nibbles of two runs of 32) and 32 `qh` bytes (2 bits for each quarter).
@inline(__always)
private func dequantizeQ6_K(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 208)
    for part in 0..<2 {
        let ql = (x + 64 * part).assumingMemoryBound(to: UInt8.self)
        let qh = (x + 128 + 32 * part).assumingMemoryBound(to: UInt8.self)
        let out = y + 128 * part
        for sub in 0..<2 {
            let sc = (x + 192 + 8 * part + sub).assumingMemoryBound(to: Int8.self)
            let s0 = d * Float(sc[0]), s1 = d * Float(sc[2]), s2 = d * Float(sc[4]), s3 = d * Float(sc[6])
            for l in (16 * sub)..<(16 * sub + 16) {
                let q0 = Int32(ql[l] & 0x0F) | Int32(qh[l] & 3) << 4
                let q1 = Int32(ql[l + 32] & 0x0F) | Int32((qh[l] >> 2) & 3) << 4
                let q2 = Int32(ql[l] >> 4) | Int32((qh[l] >> 4) & 3) << 4
                let q3 = Int32(ql[l + 32] >> 4) | Int32(qh[l] >> 6) << 4
                out[l] = s0 * Float(q0 - 32)
                out[l + 32] = s1 * Float(q1 - 32)
                out[l + 64] = s2 * Float(q2 - 32)
                out[l + 96] = s3 * Float(q3 - 32)
            }
        }
    }
}

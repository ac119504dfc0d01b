/// Dequantization of ggml blocks to Float32, following ggml's reference definitions
/// (`dequantize_row_*` in ggml-quants.c) operation by operation so results are bit-identical.

extension GGMLType {
    /// Converts `count` elements (a multiple of `blockSize`) stored at `src` in this type to Float32.
    ///
    /// - Parameters:
    ///   - dst: `[count]` output
    ///   - src: `count / blockSize` blocks of `bytesPerBlock` bytes
    public func dequantize(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafeRawPointer, _ count: Int) {
        let blocks = count / blockSize
        switch self {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0..<count {
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

/// Q4_0: `y = (q − 8) · d`; byte j holds element j (low nibble) and j + 16 (high nibble).
@inline(__always)
private func dequantizeQ4_0(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0)
    let qs = (x + 2).assumingMemoryBound(to: UInt8.self)
    for j in 0..<16 {
        y[j] = Float(Int(qs[j] & 0x0F) - 8) * d
        y[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
    }
}

/// Q4_1: `y = q · d + m`, nibbles laid out as in Q4_0.
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

/// Q4_K: 8 sub-blocks of 32, each `y = d·scale·q − dmin·min`.
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

/// Q5_K: as Q4_K with a fifth bit per element from the 32 `qh` bytes.
@inline(__always)
private func dequantizeQ5_K(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 0), dmin = half(x, 2)
    let scales = (x + 4).assumingMemoryBound(to: UInt8.self)
    let qh = (x + 16).assumingMemoryBound(to: UInt8.self)
    var ql = (x + 48).assumingMemoryBound(to: UInt8.self)
    var out = y
    var u1: UInt8 = 1, u2: UInt8 = 2
    for pair in 0..<4 {
        let (sc1, m1) = scaleMinK4(2 * pair, scales)
        let (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
        let d1 = d * Float(sc1), min1 = dmin * Float(m1)
        let d2 = d * Float(sc2), min2 = dmin * Float(m2)
        for l in 0..<32 { out[l] = d1 * Float(Int(ql[l] & 0x0F) + (qh[l] & u1 != 0 ? 16 : 0)) - min1 }
        for l in 0..<32 { out[32 + l] = d2 * Float(Int(ql[l] >> 4) + (qh[l] & u2 != 0 ? 16 : 0)) - min2 }
        ql += 32
        out += 64
        u1 <<= 2
        u2 <<= 2
    }
}

/// Q6_K: 16 sub-blocks of 16 with int8 scales; 6-bit values from a low nibble and 2 high bits.
@inline(__always)
private func dequantizeQ6_K(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeRawPointer) {
    let d = half(x, 208)
    var ql = x.assumingMemoryBound(to: UInt8.self)
    var qh = (x + 128).assumingMemoryBound(to: UInt8.self)
    var sc = (x + 192).assumingMemoryBound(to: Int8.self)
    var out = y
    for _ in 0..<2 {
        for l in 0..<32 {
            let s = l / 16
            let q1 = Int((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32
            let q2 = Int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
            let q3 = Int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
            let q4 = Int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
            out[l] = d * Float(sc[s]) * Float(q1)
            out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
            out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
            out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
        }
        out += 128
        ql += 64
        qh += 32
        sc += 8
    }
}

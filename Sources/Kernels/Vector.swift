/// Vector primitives the other kernels share: dot products, sums, `axpy`, and multi-input sums.

/// The vector every kernel computes with: 16 floats, one AVX-512 register.
typealias Vec = SIMD16<Float>

/// Loads 16 floats from `p` (no alignment needed).
@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

/// Stores 16 floats at `p` (no alignment needed).
@inline(__always)
func store(_ p: UnsafeMutablePointer<Float>, _ v: Vec) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

/// `Σ x[i]` with a vector accumulator.
@inline(__always)
func vectorSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec()
    var i = 0
    while i + 16 <= n { acc += load(x + i); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// `Σ x[i]·y[i]` with a vector accumulator.
@inline(__always)
public func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec()
    var i = 0
    while i + 16 <= n { acc = acc.addingProduct(load(x + i), load(y + i)); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i] * y[i]; i += 1 }
    return s
}

/// `y += a·x` over `n` floats.
@inline(__always)
public func axpy(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let av = Vec(repeating: a)
    var i = 0
    while i + 16 <= n {
        store(y + i, load(y + i).addingProduct(av, load(x + i)))
        i += 16
    }
    while i < n { y[i] += a * x[i]; i += 1 }
}

/// `out = base + Σₖ inputs[k]` over `count` floats in one pass over memory, multithreaded; `base`
/// defaults to `out` itself (`out += Σₖ inputs[k]`) and may be any of the buffers.
///
/// - Parameters:
///   - out: `[count]`
///   - inputs: each `[count]`
///   - base: `[count]`, or nil to accumulate into `out`
public func addSum(_ out: UnsafeMutablePointer<Float>, _ inputs: [UnsafePointer<Float>], _ count: Int, onto base: UnsafePointer<Float>? = nil) {
    let base = base ?? UnsafePointer(out)
    inputs.withUnsafeBufferPointer { sources in
        parallelChunks(count / 16, minimumChunk: 1024) { range in
            for block in range {
                let i = block * 16
                var acc = load(base + i)
                for x in sources { acc += load(x + i) }
                store(out + i, acc)
            }
        }
        for i in (count / 16 * 16)..<count {
            var sum = base[i]
            for x in sources { sum += x[i] }
            out[i] = sum
        }
    }
}

/// `exp(x)` of 16 lanes: Cody–Waite range reduction to `2ⁿ · e^r` with |r| ≤ ln2/2 and the degree-7
/// Taylor polynomial of `e^r`; relative error about 1.5·10⁻⁷ (about one float ulp) for x in
/// [−87.3, 88.7], 0 below and +∞ above.
///
/// Everything stays in vector registers: n is rounded by adding and subtracting 1.5·2²³, and 2ⁿ is
/// built from the integer bits that the addition leaves in the mantissa.
@inline(__always)
public func vectorExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let magic = Vec(repeating: 12_582_912)  // 1.5 · 2²³
    let clamped = pointwiseMax(pointwiseMin(x, Vec(repeating: 88.7)), Vec(repeating: -87.3))
    let shifted = clamped * Vec(repeating: 1.442_695_04) + magic
    let n = shifted - magic
    // r = x − n·ln2 in two parts for accuracy.
    var r = clamped.addingProduct(n, Vec(repeating: -0.693_145_751_953_125))
    r = r.addingProduct(n, Vec(repeating: -1.428_606_765_330_187_045e-6))
    var p = Vec(repeating: 1.0 / 5040)
    p = Vec(repeating: 1.0 / 720).addingProduct(p, r)
    p = Vec(repeating: 1.0 / 120).addingProduct(p, r)
    p = Vec(repeating: 1.0 / 24).addingProduct(p, r)
    p = Vec(repeating: 1.0 / 6).addingProduct(p, r)
    p = Vec(repeating: 0.5).addingProduct(p, r)
    p = Vec(repeating: 1).addingProduct(p, r)
    p = Vec(repeating: 1).addingProduct(p, r)
    // 2ⁿ: n sits in the low mantissa bits of `shifted` (offset by the magic number's bits).
    let integer = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((integer &+ 127) &<< 23, to: Vec.self)
    var result = p * scale
    result.replace(with: Vec(repeating: 0), where: x .< Vec(repeating: -87.3))
    result.replace(with: Vec(repeating: .infinity), where: x .> Vec(repeating: 88.7))
    return result
}

/// Index of the first value in `x[0..<n]` that is NaN or larger in magnitude than `limit` (by
/// default: the first NaN or infinity), or nil when there is none.
///
/// NaN fails every comparison, so `!(|v| ≤ limit)` catches it with the values past the limit.
public func firstOutside(_ x: UnsafePointer<Float>, _ n: Int, magnitude limit: Float = .greatestFiniteMagnitude) -> Int? {
    let bound = Vec(repeating: limit)
    var i = 0
    while i + 16 <= n {
        let v = load(x + i)
        if any(.!(pointwiseMax(v, -v) .<= bound)) { break }
        i += 16
    }
    while i < n {
        if !(abs(x[i]) <= limit) { return i }
        i += 1
    }
    return nil
}

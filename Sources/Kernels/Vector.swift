/// Vector primitives the other kernels share: dot products, sums, `axpy`, and multi-input sums.

private typealias Vec = SIMD16<Float>

@inline(__always)
private func load(_ p: UnsafePointer<Float>) -> Vec { UnsafeRawPointer(p).loadUnaligned(as: Vec.self) }

@inline(__always)
private func store(_ p: UnsafeMutablePointer<Float>, _ v: Vec) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self) }

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

/// `out += Σₖ inputs[k]` over `count` floats in one pass over memory, multithreaded.
///
/// - Parameters:
///   - out: `[count]`, accumulated into
///   - inputs: each `[count]`
public func addSum(_ out: UnsafeMutablePointer<Float>, _ inputs: [UnsafePointer<Float>], _ count: Int) {
    inputs.withUnsafeBufferPointer { sources in
        parallelChunks(count / 16, minimumChunk: 1024) { range in
            for block in range {
                let i = block * 16
                var acc = load(out + i)
                for x in sources { acc += load(x + i) }
                store(out + i, acc)
            }
        }
        for i in (count / 16 * 16)..<count {
            for x in sources { out[i] += x[i] }
        }
    }
}

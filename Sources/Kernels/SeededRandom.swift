import Foundation

/// A small deterministic random number generator: xoshiro256** seeded through SplitMix64.
///
/// The same seed gives the same stream on every platform and Swift version. Use the helpers
/// here (`uniform`, `shuffle`, `choice`, `sample`, `nextDouble`…) rather than the standard
/// library's `shuffled(using:)`, `randomElement(using:)` or `Int.random(in:using:)`: the standard
/// library does not promise how many numbers those draw or how it maps them, so their results may
/// change between Swift releases. Integer and `nextDouble`/`nextFloat` results are bit-exact
/// everywhere; `nextGaussian` calls `log`, `sin` and `cos`, whose last bit may differ between C
/// libraries.
///
/// Algorithms: Blackman and Vigna, "Scrambled linear pseudorandom number generators" (2021);
/// SplitMix64 from Steele, Lea and Flood (2014), as recommended for seeding xoshiro.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Creates a generator whose state is four SplitMix64 outputs from `seed`.
    public init(seed: UInt64) {
        var mixer = seed
        s0 = Self.splitMix64(&mixer)
        s1 = Self.splitMix64(&mixer)
        s2 = Self.splitMix64(&mixer)
        s3 = Self.splitMix64(&mixer)
    }

    /// Creates a generator from a raw xoshiro256** state, e.g. to reproduce published vectors.
    ///
    /// The state must not be all zero (the generator would then only return zeros).
    public init(state: (UInt64, UInt64, UInt64, UInt64)) {
        precondition(state != (0, 0, 0, 0), "xoshiro256** state must not be all zero")
        (s0, s1, s2, s3) = state
    }

    /// Advances a SplitMix64 state and returns its next output.
    public static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 64 random bits (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = Self.rotateLeft(s1 &* 5, by: 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotateLeft(s3, by: 45)
        return result
    }

    /// A uniform integer in `0..<bound`; `bound` must be positive.
    ///
    /// Lemire's multiply-and-reject method: unbiased, usually one draw.
    public mutating func uniform(below bound: Int) -> Int {
        precondition(bound > 0, "uniform(below:) needs a positive bound, got \(bound)")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold {
                product = next().multipliedFullWidth(by: range)
            }
        }
        return Int(product.high)
    }

    /// A uniform integer in `range`, which must not be empty.
    public mutating func uniform(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + uniform(below: range.upperBound - range.lowerBound + 1)
    }

    /// A uniform `Double` in `[0, 1)` with 53 random bits.
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform `Float` in `[0, 1)` with 24 random bits.
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * 0x1.0p-24
    }

    /// A standard normal sample (Box–Muller, one sample per call).
    public mutating func nextGaussian() -> Double {
        let u1 = 1 - nextDouble()  // in (0, 1], so the logarithm is finite
        let u2 = nextDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Shuffles `array` in place (Fisher–Yates, from the end).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = uniform(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }

    /// A shuffled copy of `array`.
    public mutating func shuffled<T>(_ array: [T]) -> [T] {
        var copy = array
        shuffle(&copy)
        return copy
    }

    /// A uniformly chosen element of `array`, which must not be empty.
    public mutating func choice<T>(_ array: [T]) -> T {
        precondition(!array.isEmpty, "choice(_:) needs a non-empty array")
        return array[uniform(below: array.count)]
    }

    /// `count` distinct positions of `array` chosen uniformly, in the order drawn.
    ///
    /// `count` must be between 0 and `array.count`. Uses a partial Fisher–Yates shuffle of the
    /// indices, so it draws exactly `count` numbers.
    public mutating func sample<T>(_ array: [T], count: Int) -> [T] {
        precondition(count >= 0 && count <= array.count, "cannot sample \(count) of \(array.count) elements")
        var indices = Array(array.indices)
        for i in 0..<count {
            let j = i + uniform(below: indices.count - i)
            if i != j { indices.swapAt(i, j) }
        }
        return indices[0..<count].map { array[$0] }
    }

    @inline(__always)
    private static func rotateLeft(_ x: UInt64, by k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}

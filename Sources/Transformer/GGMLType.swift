/// The ggml tensor types CircuitKit can read from GGUF files, with their block layouts.
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case bf16 = 30

    /// Elements per quantization block (1 for plain float types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        case .q4_K, .q5_K, .q6_K: return 256
        }
    }

    /// Bytes per block.
    public var bytesPerBlock: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18  // f16 d, 16 × 2 nibbles
        case .q4_1: return 20  // f16 d, f16 m, 16 × 2 nibbles
        case .q8_0: return 34  // f16 d, 32 × int8
        case .q4_K: return 144  // f16 d, f16 dmin, 12 packed 6-bit scales/mins, 128 × 2 nibbles
        case .q5_K: return 176  // as Q4_K plus 32 bytes of high bits
        case .q6_K: return 210  // 128 low nibbles, 64 × 4 high 2-bit pairs, 16 int8 scales, f16 d
        }
    }

    /// ggml's name for the type (`Q4_K`, `F16`, ...).
    public var name: String { Self.names[Int(rawValue)] ?? "type \(rawValue)" }

    /// ggml's type names by id, including the types CircuitKit cannot read, for error messages.
    private static let names: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
        11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
        19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
        27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]

    /// A type id as ggml names it, e.g. `7 (Q5_1)`, or `99 (unknown)`.
    public static func describe(_ id: UInt32) -> String {
        "\(id) (\(names[Int(id)] ?? "unknown"))"
    }
}

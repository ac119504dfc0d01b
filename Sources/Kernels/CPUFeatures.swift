import Foundation

/// The register blocking of `gemm`'s micro-kernel, chosen for the processor it runs on.
public enum GemmMicroKernel: String, Sendable, CaseIterable {
    /// An 8 × 48 tile in 24 registers of 16 floats (AVX-512).
    case wide
    /// The same tile as four 4 × 24 quarters of 12 registers of 8 floats (AVX2's 16 registers, NEON):
    /// the wide tile would spill there, at less than half the speed.
    case narrow

    /// `wide` where the processor has AVX-512, else `narrow`; `CIRCUITKIT_GEMM_KERNEL=wide|narrow`
    /// overrides the detection (benchmarks compare the two). Both sum in the same order, so the
    /// choice does not change results.
    public static let preferred: GemmMicroKernel = {
        if let name = ProcessInfo.processInfo.environment["CIRCUITKIT_GEMM_KERNEL"], let kernel = GemmMicroKernel(rawValue: name) {
            return kernel
        }
        return CPUFeatures.hasAVX512 ? .wide : .narrow
    }()
}

/// What the processor running the kernels offers.
enum CPUFeatures {
    /// Whether the processor reports AVX-512 Foundation.
    static var hasAVX512: Bool {
        #if arch(x86_64) && os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return true }
        return flags.split(separator: " ").contains("avx512f")
        #elseif arch(x86_64) && os(macOS)
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        return sysctlbyname("hw.optional.avx512f", &value, &size, nil, 0) == 0 && value == 1
        #else
        return false
        #endif
    }
}

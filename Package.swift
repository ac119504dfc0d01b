// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The CPU that release builds optimize numeric code for.
///
/// Swift only emits AVX/AVX-512 instructions for `SIMD` types when told the target CPU may run
/// them; the default x86-64 baseline (SSE2) runs our kernels ~50× slower. Release builds on an
/// x86-64 host therefore compile for the building machine (`-target-cpu native`), the same choice
/// as building from source with `-march=native`. Set `CIRCUITKIT_TARGET_CPU` to build for another
/// CPU (`x86-64-v3` for binaries that run on any AVX2 machine) or to `generic` for no flag at all
/// (needed when CircuitKit is a dependency of another package: SwiftPM refuses unsafe flags there).
/// Debug builds and non-x86 hosts (where NEON is the baseline) get no flag.
let targetCPU: String? = {
    #if arch(x86_64)
    let requested = ProcessInfo.processInfo.environment["CIRCUITKIT_TARGET_CPU"] ?? "native"
    return ["", "generic", "none"].contains(requested) ? nil : requested
    #else
    return nil
    #endif
}()

let numericSettings: [SwiftSetting] = targetCPU.map {
    [.unsafeFlags(["-target-cpu", $0], .when(configuration: .release))]
} ?? []

let package = Package(
    name: "CircuitKit",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "CircuitKit", targets: ["Kernels", "Transformer", "Circuits", "Tasks"]),
        .executable(name: "circuits", targets: ["CircuitsCLI"]),
    ],
    targets: [
        .target(name: "Kernels", swiftSettings: numericSettings),
        .target(name: "Transformer", dependencies: ["Kernels"], swiftSettings: numericSettings),
        .target(name: "Circuits", dependencies: ["Kernels", "Transformer"], swiftSettings: numericSettings),
        .target(name: "Tasks", dependencies: ["Transformer", "Circuits"], swiftSettings: numericSettings),
        .executableTarget(
            name: "CircuitsCLI", dependencies: ["Kernels", "Transformer", "Circuits", "Tasks"],
            swiftSettings: numericSettings),
        .executableTarget(
            name: "benchmarks", dependencies: ["Kernels", "Transformer", "Circuits", "Tasks"],
            path: "Benchmarks/Sources", swiftSettings: numericSettings),
        .target(name: "TestSupport", dependencies: ["Kernels", "Transformer"], path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"], swiftSettings: numericSettings),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "TestSupport"], swiftSettings: numericSettings),
        .testTarget(name: "CircuitsTests", dependencies: ["Circuits", "Tasks", "TestSupport"], swiftSettings: numericSettings),
        .testTarget(name: "TasksTests", dependencies: ["Tasks", "TestSupport"], swiftSettings: numericSettings),
        .testTarget(name: "CircuitsCLITests", dependencies: ["CircuitsCLI", "TestSupport"], swiftSettings: numericSettings),
    ]
)

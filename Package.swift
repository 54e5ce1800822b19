// swift-tools-version:6.0
// A memory-efficient DenseNet research framework: a CPU tensor runtime with counted memory,
// DenseNets in four memory strategies (Pleiss et al. 2017, arXiv 1707.06990) and benchmarks
// of their peak RSS and step time.
import PackageDescription

// MARK: - Build settings

/// The numeric modules are compiled with optimisation in every configuration, so that
/// `swift test` and a debug `swift run bench-memory` are not slowed tens of times. They are
/// compiled for the x86-64 baseline whatever the building machine has, so a binary runs on any
/// x86-64 CPU: the hot inner loops that gain from AVX2/FMA or AVX-512 live in `CKernels`, compiled
/// once per level and chosen at run time by the running CPU (Sources/CKernels/CPUDispatch.c).
let optimized: [SwiftSetting] = [
    .unsafeFlags(["-O", "-enforce-exclusivity=unchecked"]),
    .swiftLanguageMode(.v5),
]
let plain: [SwiftSetting] = [.swiftLanguageMode(.v5)]

// MARK: - System libraries (Debian packages, installed by Scripts/setup.sh)

let systemLibraries: [Target] = [
    .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CJemalloc", pkgConfig: "jemalloc", providers: [.apt(["libjemalloc-dev"])]),
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .target(name: "CAllocatorConfig", cSettings: [.unsafeFlags(["-O2"])]),
    // The runtime's worker threads (Sources/CThreadPool/include/ThreadPool.h says why its own).
    .target(name: "CThreadPool", cSettings: [.unsafeFlags(["-O2"])]),
    // Per-CPU-level kernels, no contraction into FMA (KernelTemplate.h says why).
    .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
    // Open MPI (Sources/CMPI/shim.h says why Swift reaches it through a C wrapper).
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    .target(name: "CMPIShim", dependencies: ["CMPI"], cSettings: [.unsafeFlags(["-O2"])]),
    .systemLibrary(name: "CLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
    // libjpeg's error_exit longjmps inside C (Sources/CImageCodecs), never across Swift frames.
    .target(name: "CImageCodecs", dependencies: ["CLibJPEG"], cSettings: [.unsafeFlags(["-O2"])]),
]

// MARK: - Libraries

let libraries: [Target] = [
    .target(name: "Runtime", dependencies: ["COpenBLAS", "CJemalloc", "CAllocatorConfig", "CThreadPool"],
            swiftSettings: optimized),
    .target(name: "Kernels", dependencies: ["Runtime", "COpenBLAS", "CKernels"], swiftSettings: optimized),
    .target(name: "Autograd", dependencies: ["Runtime", "Kernels"], swiftSettings: optimized),
    .target(name: "NeuralLayers", dependencies: ["Runtime", "Kernels", "Autograd"], swiftSettings: optimized),
    .target(name: "DenseNetModels", dependencies: ["Runtime", "Kernels", "Autograd", "NeuralLayers"],
            swiftSettings: optimized),
    .target(name: "Datasets", dependencies: ["Runtime", "CZlib", "CLibPNG", "CImageCodecs"],
            swiftSettings: optimized),
    .target(name: "Checkpoints", dependencies: ["Runtime"], swiftSettings: optimized),
    .target(name: "Training", dependencies: ["Runtime", "Autograd", "NeuralLayers", "DenseNetModels",
                                             "Datasets", "Checkpoints", "DataParallel"], swiftSettings: optimized),
    .target(name: "DataParallel", dependencies: ["Runtime", "CMPIShim"], swiftSettings: optimized),
    .target(name: "BenchmarkSupport", dependencies: ["Runtime", "Kernels", "Autograd", "NeuralLayers", "Training", "DataParallel",
                                                     "DenseNetModels"], swiftSettings: optimized),
]

// MARK: - Command lines

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let commandLines: [Target] = [
    // The option groups the command lines share (model and input, data, threads, memory
    // budget, output, optimizer, strategies) and their one way to ask the memory planner.
    .target(name: "CommandLineOptions", dependencies: ["Runtime", "Datasets", "DenseNetModels", "Training", argumentParser],
            swiftSettings: plain),
    .executableTarget(name: "bench-memory", dependencies: ["Runtime", "BenchmarkSupport", "CommandLineOptions", argumentParser],
                      path: "Benchmarks/bench-memory", swiftSettings: plain),
    .executableTarget(name: "bench-kernels", dependencies: ["Runtime", "Kernels", "BenchmarkSupport", "CommandLineOptions",
                                                            argumentParser],
                      path: "Benchmarks/bench-kernels", swiftSettings: plain),
    .executableTarget(name: "mpi-selftest", dependencies: ["Runtime", "DataParallel"],
                      path: "Benchmarks/mpi-selftest", swiftSettings: plain),
    .executableTarget(name: "densenet", dependencies: ["Runtime", "Training", "BenchmarkSupport", "CommandLineOptions",
                                                       argumentParser],
                      swiftSettings: plain),
]

// MARK: - Tests

let tests: [Target] = [
    .testTarget(name: "RuntimeTests", dependencies: ["Runtime"], swiftSettings: plain),
    .testTarget(name: "KernelTests", dependencies: ["Runtime", "Kernels"], swiftSettings: plain),
    .testTarget(name: "AutogradTests", dependencies: ["Runtime", "Kernels", "Autograd", "NeuralLayers"],
                swiftSettings: plain),
    .testTarget(name: "DenseNetTests", dependencies: ["Runtime", "Autograd", "NeuralLayers", "DenseNetModels"],
                swiftSettings: plain),
    .testTarget(name: "TrainingTests", dependencies: ["Runtime", "Datasets", "Checkpoints", "Training",
                                                      "DenseNetModels", "Autograd"],
                exclude: ["Fixtures"], swiftSettings: plain),
    .testTarget(name: "ImageTests", dependencies: ["Runtime", "Datasets", "Checkpoints", "Training", "DenseNetModels",
                                                    "NeuralLayers", "Autograd"],
                exclude: ["Fixtures"], swiftSettings: plain),
    .testTarget(name: "DataParallelTests", dependencies: ["Runtime", "DataParallel", "Checkpoints"], swiftSettings: plain),
    .testTarget(name: "BenchmarkTests", dependencies: ["BenchmarkSupport", "DenseNetModels", "Runtime"], swiftSettings: plain),
    .testTarget(name: "CommandLineOptionsTests", dependencies: ["CommandLineOptions", "DenseNetModels", "Training",
                                                                argumentParser], swiftSettings: plain),
]

let package = Package(
    name: "MemoryEfficientDenseNet",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bench-memory", targets: ["bench-memory"]),
        .executable(name: "bench-kernels", targets: ["bench-kernels"]),
        .executable(name: "densenet", targets: ["densenet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: systemLibraries + libraries + commandLines + tests
)

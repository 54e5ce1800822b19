import CKernels

/// Which implementation of the hot inner loops runs: the plain Swift versions (the references,
/// compiled for the x86-64 baseline like every Swift module, Package.swift) or the C kernels of
/// `CKernels` compiled for one instruction-set level (baseline, AVX2+FMA, AVX-512), chosen at run
/// time by what the running CPU has (cpuid, Sources/CKernels/CPUDispatch.c) and never by the
/// building machine. So a binary built on any x86-64 machine runs on any other.
///
/// Dispatched today: batch norm's row kernels (`BatchNorm+Tiles.swift`) and the blocked sums of
/// `Elementwise+Vector.swift`. `CPUDispatchTests` compares every level the CPU supports with the
/// Swift references.
public enum KernelLevel: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// The Swift row kernels.
    case swiftReference = -1
    /// C, x86-64 baseline (SSE2) or the compiler's default elsewhere.
    case baseline = 0
    /// C, AVX2 + FMA.
    case avx2 = 1
    /// C, AVX-512 (F, DQ, BW, VL).
    case avx512 = 2

    public var description: String {
        switch self {
        case .swiftReference: return "swift"
        case .baseline: return "baseline"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    /// The level named `name` ("swift", "baseline", "avx2", "avx512"), or nil.
    public init?(name: String) {
        guard let level = KernelLevel.allCases.first(where: { $0.description == name }) else { return nil }
        self = level
    }

    /// Whether the running CPU can run this level.
    public var isSupported: Bool { self == .swiftReference || ck_kernels_for_level(Int32(rawValue)) != nil }

    /// Every level the running CPU supports, the Swift references first.
    public static var supported: [KernelLevel] { allCases.filter(\.isSupported) }

    /// The fastest level the running CPU supports.
    public static let best: KernelLevel = KernelLevel(rawValue: Int(ck_supported_level())) ?? .baseline

    nonisolated(unsafe) private static var current: KernelLevel = best
    nonisolated(unsafe) static var table: UnsafePointer<ck_kernels>? = ck_kernels_for_level(Int32(best.rawValue))

    /// The level the kernels use now (default `best`). Tests and benchmarks set it to compare
    /// levels; set it only between kernel calls. Setting a level the CPU lacks is a programmer
    /// error.
    public static var active: KernelLevel {
        get { current }
        set {
            precondition(newValue.isSupported, "KernelLevel: this CPU cannot run \(newValue) (supported: \(supported))")
            current = newValue
            table = newValue == .swiftReference ? nil : ck_kernels_for_level(Int32(newValue.rawValue))
        }
    }

    /// Runs `body` with `level` active, then restores the previous level.
    public static func with<R>(_ level: KernelLevel, _ body: () throws -> R) rethrows -> R {
        let saved = active
        active = level
        defer { active = saved }
        return try body()
    }
}

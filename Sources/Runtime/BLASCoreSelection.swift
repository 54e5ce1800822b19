import Foundation

/// Picks OpenBLAS's AVX-512 kernels on CPUs its build does not recognise.
///
/// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know this machine's CPU (AMD family 26,
/// Zen 5) and falls back to its AVX2 "Haswell" kernels, although the CPU has AVX-512: square
/// sgemm then runs at about 240 GFLOP/s on 2 cores instead of about 440 with the SkylakeX
/// kernels (measured with bench-kernels, see Papers/design-notes.md). OpenBLAS reads
/// `OPENBLAS_CORETYPE` only when it is loaded, before `main`, so the command lines call
/// `adoptBestCoreType()` first thing: when the variable is unset and the CPU has the AVX-512
/// subsets those kernels use, it sets it and re-executes the program once. Child processes
/// (bench-memory's per-configuration children) inherit it. An `OPENBLAS_CORETYPE` already in
/// the environment is always respected (this project's machines set `Haswell` on purpose, so
/// their figures stay comparable); `swift test` keeps whatever OpenBLAS chooses.
public enum BLASCoreSelection {
    /// The AVX-512 subsets OpenBLAS's SkylakeX sgemm kernels need.
    static let requiredFlags = ["avx512f", "avx512dq", "avx512bw", "avx512vl"]

    /// The core type to ask for on this CPU, or nil to leave OpenBLAS's choice.
    public static func preferredCoreType(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> String? {
        guard let cpuinfo,
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return requiredFlags.allSatisfy(flags.contains) ? "SKYLAKEX" : nil
    }

    /// Sets OPENBLAS_CORETYPE and re-executes this program when that selects better kernels.
    /// Returns (does nothing) when the variable is already set or no better choice exists.
    public static func adoptBestCoreType() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              let core = preferredCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returns only on failure: carry on with OpenBLAS's own choice.
        for p in argv { free(p) }
    }
}

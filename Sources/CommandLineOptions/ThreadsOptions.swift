import ArgumentParser
import Foundation
import Runtime

/// `--threads N`: the threads the kernels (and GEMM splitting) run on, `Parallel.threadCount`.
/// Their scratch, and so the planner's prediction, depends on it. Shared by every command line.
public struct ThreadsOptions: ParsableArguments {
    @Option(help: "Threads the kernels run on, all cores by default; their scratch, and the predicted peak, depend on it.")
    public var threads: Int = ThreadsOptions.allCores

    /// The CPU count, `Parallel.threadCount`'s own default.
    public static var allCores: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    public init() {}

    public func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// Sets `Parallel.threadCount` to `--threads`.
    public func apply() { Parallel.threadCount = threads }
}

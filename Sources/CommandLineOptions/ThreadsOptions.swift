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

    /// The most threads a command line accepts: each is a real thread of every parallel kernel,
    /// and the planner's scratch grows with them; `--threads 9223372036854775807` trapped.
    public static let maximum = 1024

    public func validate() throws {
        guard threads >= 1, threads <= ThreadsOptions.maximum else {
            throw ValidationError("--threads must be in 1...\(ThreadsOptions.maximum) (this machine has \(ThreadsOptions.allCores)"
                                  + " cores), got \(threads)")
        }
    }

    /// Sets `Parallel.threadCount` to `--threads`.
    public func apply() { Parallel.threadCount = threads }
}

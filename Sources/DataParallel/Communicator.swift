import CMPIShim
import Foundation
import Runtime

/// The ranks of a data-parallel job and the collectives between them, over Open MPI's world
/// communicator (through the C wrapper in Sources/CMPIShim).
///
/// A process started without an MPI launcher never touches MPI: `Communicator.world()` gives
/// rank 0 of 1, whose collectives leave their buffers as they are (a sum or average over one
/// rank, a broadcast from itself), so a run without `mpirun` computes exactly what it did before
/// this module existed. Under `mpirun -np N` (detected by `LaunchEnvironment`), `world()`
/// initialises MPI once per process, asking for `MPI_THREAD_SERIALIZED`: calls may come from
/// any thread, one at a time.
///
/// Errors: MPI calls return codes (`MPI_ERRORS_RETURN`), thrown as `DataParallelError`. After a
/// failed collective the job cannot continue (the ranks no longer agree on what was sent); call
/// `abort(code:message:)`, which ends every rank. A rank that dies outright is noticed by
/// `mpirun`, which ends the others and exits non-zero.
///
/// Collectives are matched by order: every rank must issue the same collectives in the same
/// order (MPI 3.1 standard, section 5.12 for the non-blocking ones).
public final class Communicator: @unchecked Sendable {
    /// This process's rank, `0..<size`.
    public let rank: Int
    /// Number of ranks in the job (1 without a launcher).
    public let size: Int
    /// Whether MPI was initialised (launched by `mpirun`); false for the single-process fallback.
    public let usesMPI: Bool
    /// The MPI thread level granted (0 single, 1 funneled, 2 serialized, 3 multiple); 0 without MPI.
    public let threadLevel: Int
    /// The most elements one MPI message carries: blocking collectives of longer buffers are
    /// split into pieces of this length. MPI counts are C `int`s; smaller values are for tests.
    public var maximumMessageCount: Int = Int(Int32.max) {
        didSet { precondition(maximumMessageCount > 0, "maximumMessageCount must be positive") }
    }

    private let lock = NSLock()
    private var isFinalized = false

    private init(rank: Int, size: Int, usesMPI: Bool, threadLevel: Int) {
        self.rank = rank
        self.size = size
        self.usesMPI = usesMPI
        self.threadLevel = threadLevel
    }

    /// Rank 0 of a one-rank job, without MPI: collectives leave their buffers unchanged.
    public static func singleProcess() -> Communicator {
        Communicator(rank: 0, size: 1, usesMPI: false, threadLevel: 0)
    }

    private static let worldLock = NSLock()
    nonisolated(unsafe) private static var worldCommunicator: Communicator?

    /// The job's communicator: MPI's world when the process was started by an MPI launcher
    /// (initialised on the first call; MPI allows that once per process), else `singleProcess()`.
    /// - Throws: `DataParallelError.mpiUnavailable` when launched by mpirun but built without
    ///   Open MPI, `.initializationFailed` when MPI does not start.
    public static func world(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator {
        worldLock.lock()
        defer { worldLock.unlock() }
        if let existing = worldCommunicator { return existing }
        guard let variable = LaunchEnvironment.launcherVariable(in: environment) else {
            let single = singleProcess()
            worldCommunicator = single
            return single
        }
        guard cmpi_is_available() != 0 else { throw DataParallelError.mpiUnavailable(launcherVariable: variable) }
        var provided: Int32 = 0
        let rc = cmpi_init(&provided)
        guard rc == 0 else {
            throw DataParallelError.initializationFailed(code: rc, message: mpiErrorString(rc))
        }
        var rank: Int32 = 0, size: Int32 = 1
        try check("MPI_Comm_rank", cmpi_rank(&rank))
        try check("MPI_Comm_size", cmpi_size(&size))
        let world = Communicator(rank: Int(rank), size: Int(size), usesMPI: true, threadLevel: Int(provided))
        worldCommunicator = world
        return world
    }

    /// Runs `body` with `world()` and then finalizes MPI, which every rank must do before it
    /// exits or mpirun reports the job as failed. An error thrown by `body` is rethrown without
    /// finalizing (finalizing waits for the other ranks, which may be waiting for this one): the
    /// process then exits non-zero and mpirun ends the other ranks.
    public static func withWorld<R>(_ body: (Communicator) throws -> R) throws -> R {
        let communicator = try world()
        let result = try body(communicator)
        try communicator.finalize()
        return result
    }

    static func check(_ operation: String, _ code: Int32) throws {
        if code != 0 { throw DataParallelError.failed(operation, code) }
    }

    /// Runs one MPI call under the lock (serialised, as the thread level asks), after checking
    /// that the communicator is still usable.
    func call(_ operation: String, _ body: () -> Int32) throws {
        lock.lock()
        defer { lock.unlock() }
        guard !isFinalized else { throw DataParallelError.finalized(operation: operation) }
        try Communicator.check(operation, body())
    }

    /// Waits until every rank has reached this call.
    public func barrier() throws {
        guard usesMPI else { return }
        try call("MPI_Barrier") { cmpi_barrier() }
    }

    /// Ends MPI in this process (`MPI_Finalize`); every rank must call it at the end of a run, or
    /// mpirun reports the job as failed. Later collectives throw `.finalized`. Idempotent.
    public func finalize() throws {
        guard usesMPI else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !isFinalized else { return }
        isFinalized = true
        try Communicator.check("MPI_Finalize", cmpi_finalize())
    }

    /// Prints `message` to standard error and ends the whole job with `code` (`MPI_Abort`), as
    /// after a failed collective or an error on one rank only; without MPI, exits with `code`.
    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("rank \(rank) of \(size): \(message)\n".utf8))
        if usesMPI && !isFinalized { _ = cmpi_abort(code) }
        exit(code)
    }
}

/// How a process finds out whether an MPI launcher started it, from its environment.
public enum LaunchEnvironment {
    /// Variables set by MPI launchers for every process they start: Open MPI's mpirun
    /// (`OMPI_COMM_WORLD_SIZE`, https://docs.open-mpi.org/en/v5.0.x/tuning-apps/environment-var.html),
    /// and PMIx/PMI launchers such as Slurm's srun (`PMIX_RANK`, `PMI_SIZE`).
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    /// The first launcher variable present in `environment`, or nil for a plain process.
    public static func launcherVariable(in environment: [String: String]) -> String? {
        launcherVariables.first { environment[$0] != nil }
    }
}

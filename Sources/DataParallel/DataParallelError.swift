import CMPIShim

/// Everything data-parallel communication can get wrong. Each case says what failed and what to
/// do; none of them is a crash. MPI errors come back as codes because `Communicator` sets
/// `MPI_ERRORS_RETURN` on the world communicator (Sources/CMPIShim/CMPIShim.c).
public enum DataParallelError: Error, CustomStringConvertible, Equatable {
    /// The process was started by an MPI launcher (named by the variable that shows it) but this
    /// build has no Open MPI: it would run alone and silently train a different model.
    case mpiUnavailable(launcherVariable: String)
    /// `MPI_Init_thread` failed.
    case initializationFailed(code: Int32, message: String)
    /// An MPI call failed: most often another rank has died and the connection to it broke.
    case operationFailed(operation: String, code: Int32, message: String)
    /// A collective was called after `Communicator.finalize()`.
    case finalized(operation: String)
    /// A broadcast root that is not a rank of the job.
    case rootOutOfRange(root: Int, size: Int)
    /// A single non-blocking message longer than MPI's `int` count allows.
    case countTooLarge(operation: String, count: Int, limit: Int)
    /// A gradient bucket cap that is not a positive number of bytes.
    case invalidBucketCap(bytes: Int)
    /// `GradientBuckets.markReady` was called twice for the same gradient in one step.
    case gradientMarkedTwice(index: Int)
    /// `GradientBuckets.finish()` was called while some gradients were never marked ready.
    case gradientsNotReady(indices: [Int])

    public var description: String {
        switch self {
        case .mpiUnavailable(let variable):
            return "this process was started by an MPI launcher (\(variable) is set) but was built without"
                + " Open MPI; run Scripts/setup.sh (it installs openmpi-bin and libopenmpi-dev), rebuild,"
                + " and launch again (or run without mpirun for a single process)"
        case .initializationFailed(let code, let message):
            return "MPI_Init_thread failed (MPI error \(code): \(message)); launch with"
                + " `mpirun -np N <command>` from Open MPI (openmpi-bin), or without mpirun for one process"
        case .operationFailed(let operation, let code, let message):
            return "MPI \(operation) failed (MPI error \(code): \(message)); another rank has probably"
                + " failed or been killed: see its messages and mpirun's above"
        case .finalized(let operation):
            return "MPI \(operation) called after the communicator was finalized; finalize only at the end of the run"
        case .rootOutOfRange(let root, let size):
            return "broadcast root \(root) is not a rank of this job (ranks 0..<\(size))"
        case .countTooLarge(let operation, let count, let limit):
            return "MPI \(operation) of \(count) elements exceeds MPI's limit of \(limit) per message;"
                + " use a smaller gradient bucket cap"
        case .invalidBucketCap(let bytes):
            return "gradient bucket cap of \(bytes) bytes must be positive (PyTorch DDP's default is 25 MiB)"
        case .gradientMarkedTwice(let index):
            return "gradient \(index) was marked ready twice in one step; its parameter's gradient must be"
                + " final (marked once) before the bucket holding it is reduced"
        case .gradientsNotReady(let indices):
            let shown = indices.prefix(8).map(String.init).joined(separator: ", ")
            return "gradients [\(shown)\(indices.count > 8 ? ", ..." : "")] were never marked ready this step;"
                + " every parameter must take part in the loss (or be left out of the buckets)"
        }
    }

    /// The error of a failed MPI call, with MPI's own text for `code`.
    static func failed(_ operation: String, _ code: Int32) -> DataParallelError {
        .operationFailed(operation: operation, code: code, message: mpiErrorString(code))
    }
}

/// MPI's description of an error code (`MPI_Error_string`).
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 512)
    buffer.withUnsafeMutableBufferPointer { cmpi_error_string(code, $0.baseAddress, $0.count) }
    return String(cString: buffer)
}

import CMPIShim
import Runtime

/// All-reduce and broadcast, in place, over tensors and raw buffers. Without MPI (one rank) a
/// sum or an average over the ranks is the buffer itself and a broadcast from rank 0 changes
/// nothing, so these return at once.
extension Communicator {
    // MARK: Blocking all-reduce

    /// Replaces every element of `buffer` by its sum over all ranks (`MPI_Allreduce`, `MPI_SUM`).
    /// Buffers longer than `maximumMessageCount` go in several messages.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard usesMPI, let base = buffer.baseAddress else { return }
        try forEachMessage(buffer.count) { start, count in
            try call("MPI_Allreduce") { cmpi_allreduce_sum_float(base + start, count) }
        }
    }

    /// Replaces every element by its sum over all ranks, in double precision (for metrics:
    /// loss sums, counts of correct answers).
    public func allReduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
    }

    /// Replaces every element of `buffer` by its sum over all ranks, in double precision (for
    /// synchronised batch-norm statistics).
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard usesMPI, let base = buffer.baseAddress else { return }
        try forEachMessage(buffer.count) { start, count in
            try call("MPI_Allreduce") { cmpi_allreduce_sum_double(base + start, count) }
        }
    }

    /// Replaces every element by its mean over all ranks (sum, then divided by `size`).
    public func allReduceAverage(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard usesMPI else { return }
        try allReduceSum(buffer)
        Communicator.divide(buffer, by: size)
    }

    /// `allReduceSum` over a contiguous tensor's elements, in place.
    public func allReduceSum(_ tensor: Tensor) throws {
        try Communicator.withElements(tensor) { try allReduceSum($0) }
    }

    /// `allReduceAverage` over a contiguous tensor's elements, in place.
    public func allReduceAverage(_ tensor: Tensor) throws {
        try Communicator.withElements(tensor) { try allReduceAverage($0) }
    }

    // MARK: Broadcast

    /// Copies rank `root`'s `buffer` into every other rank's (`MPI_Bcast`). Every rank passes a
    /// buffer of the same length.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws {
        guard root >= 0 && root < size else { throw DataParallelError.rootOutOfRange(root: root, size: size) }
        guard usesMPI, let base = buffer.baseAddress else { return }
        try forEachMessage(buffer.count) { start, count in
            try call("MPI_Bcast") { cmpi_broadcast_float(base + start, count, Int32(root)) }
        }
    }

    /// `broadcast` of a contiguous tensor's elements, e.g. parameters and batch-norm running
    /// statistics from rank 0 at the start of a run.
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws {
        try Communicator.withElements(tensor) { try broadcast($0, root: root) }
    }

    // MARK: Non-blocking all-reduce

    /// Starts summing `buffer` over all ranks in place (`MPI_Iallreduce`) and returns at once.
    /// `buffer` must stay allocated and untouched until the returned reduction is waited for;
    /// `owner` (e.g. the buffer's `Storage`) is kept alive until then. Without MPI the returned
    /// reduction is already complete.
    /// - Throws: `.countTooLarge` for a buffer longer than `maximumMessageCount`.
    public func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>, owner: AnyObject? = nil) throws -> PendingAllReduce {
        guard usesMPI, let base = buffer.baseAddress, buffer.count > 0 else {
            return PendingAllReduce(communicator: self, request: nil, owner: nil)
        }
        guard buffer.count <= maximumMessageCount else {
            throw DataParallelError.countTooLarge(operation: "MPI_Iallreduce", count: buffer.count, limit: maximumMessageCount)
        }
        var request: OpaquePointer?
        try call("MPI_Iallreduce") { cmpi_iallreduce_sum_float(base, Int32(buffer.count), &request) }
        return PendingAllReduce(communicator: self, request: request, owner: owner)
    }

    /// `startAllReduceSum` over a contiguous tensor's elements (its storage is kept alive).
    public func startAllReduceSum(_ tensor: Tensor) throws -> PendingAllReduce {
        try Communicator.withElements(tensor) { try startAllReduceSum($0, owner: tensor.storage) }
    }

    // MARK: Helpers

    /// Calls `body(start, count)` for consecutive pieces of at most `maximumMessageCount` elements.
    func forEachMessage(_ total: Int, _ body: (Int, Int32) throws -> Void) throws {
        var start = 0
        while start < total {
            let count = min(maximumMessageCount, total - start)
            try body(start, Int32(count))
            start += count
        }
    }

    static func withElements<R>(_ tensor: Tensor, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(tensor.isContiguous, "Communicator: tensor of shape \(tensor.shape) strides \(tensor.strides) is not contiguous")
        return try tensor.withPointer { try body(UnsafeMutableBufferPointer(start: $0, count: tensor.count)) }
    }

    /// x /= n for every element (a division, not a multiplication by 1/n, so that the mean of
    /// equal values is exact).
    static func divide(_ buffer: UnsafeMutableBufferPointer<Float>, by n: Int) {
        let d = Float(n)
        for i in buffer.indices { buffer[i] /= d }
    }
}

/// A started non-blocking all-reduce. `wait()` must be called once before the buffer is read or
/// freed; `isComplete()` polls it and lets MPI make progress (Open MPI advances non-blocking
/// collectives only inside MPI calls).
public final class PendingAllReduce: @unchecked Sendable {
    private let communicator: Communicator
    private var request: OpaquePointer?
    private var owner: AnyObject?

    init(communicator: Communicator, request: OpaquePointer?, owner: AnyObject?) {
        self.communicator = communicator
        self.request = request
        self.owner = owner
    }

    /// Whether the reduction has finished (`MPI_Test`); true once waited for.
    public func isComplete() throws -> Bool {
        guard let request else { return true }
        var done: Int32 = 0
        try communicator.call("MPI_Test") { cmpi_test(request, &done) }
        return done != 0
    }

    /// Blocks until the reduction has finished (`MPI_Wait`). Idempotent.
    public func wait() throws {
        guard let request else { return }
        self.request = nil
        defer { owner = nil }
        try communicator.call("MPI_Wait") { cmpi_wait(request) }
    }

    deinit {
        // Never free a buffer MPI may still write: a reduction dropped unwaited is waited here.
        try? wait()
    }
}

import Foundation
import Runtime

/// Averages gradients over the ranks in buckets, each reduced by a non-blocking all-reduce as
/// soon as all of its gradients are final, so that communication overlaps the rest of the
/// backward pass, as PyTorch's DistributedDataParallel does (Li et al. 2020, "PyTorch
/// Distributed: Experiences on Accelerating Data Parallel Training", arXiv 2006.15704, §3.2).
///
/// Use, once per step, with the gradients indexed in parameter registration order:
/// 1. `markReady(i, gradient:)` for each gradient once it is final (backward produces them
///    roughly in reverse registration order, which is why buckets are filled from the end);
///    it copies the gradient into its bucket, and when the bucket is full starts its reduction.
/// 2. `finish()` before the optimizer step: waits for every bucket, divides by the number of
///    ranks and copies the averages back into the gradient tensors given to `markReady`.
///
/// Buckets are started strictly in bucket order (a ready bucket waits for the buckets before
/// it), so every rank issues the same collectives in the same order whatever order its
/// gradients become ready in (MPI matches collectives by order; DDP launches buckets in order
/// for the same reason). It knows nothing of autograd: any caller that can say when a gradient
/// is final can use it. With one rank (no MPI), `markReady` only records and `finish` changes
/// nothing, and no bucket memory is allocated.
public final class GradientBuckets {
    /// PyTorch DDP's default `bucket_cap_mb`: 25 MiB.
    public static let defaultCapBytes = 25 << 20

    /// Element count of every gradient, in registration order.
    public let elementCounts: [Int]
    /// The gradient indices of every bucket, in the order they are filled.
    public let buckets: [[Int]]
    public let communicator: Communicator
    /// Buckets whose reduction has started this step (always a prefix of `buckets`); 0 without MPI.
    public var startedBucketCount: Int { nextToStart }
    /// Seconds `finish()` spent waiting for reductions in the last step (0 with one rank).
    public private(set) var lastWaitSeconds: Double = 0

    /// Bucket and offset (in elements) of each gradient.
    private let location: [(bucket: Int, offset: Int)]
    private let bucketCounts: [Int]
    /// One flat buffer per bucket (counted as `.gradients`); empty with one rank.
    private let buffers: [Tensor]

    // State of the current step.
    private var targets: [Tensor?]
    private var missing: [Int]
    private var nextToStart = 0
    private var pending: [PendingAllReduce?]

    /// Buckets of at most about `capBytes` each, from `partition(elementCounts:capBytes:)`.
    /// - Throws: `.invalidBucketCap` when `capBytes` is not positive.
    public convenience init(elementCounts: [Int], capBytes: Int = GradientBuckets.defaultCapBytes,
                            communicator: Communicator) throws {
        guard capBytes > 0 else { throw DataParallelError.invalidBucketCap(bytes: capBytes) }
        self.init(elementCounts: elementCounts,
                  buckets: GradientBuckets.partition(elementCounts: elementCounts, capBytes: capBytes),
                  communicator: communicator)
    }

    /// Explicit buckets: `buckets` lists every gradient index exactly once (a bucket may be empty).
    public init(elementCounts: [Int], buckets: [[Int]], communicator: Communicator) {
        precondition(elementCounts.allSatisfy { $0 >= 0 }, "GradientBuckets: negative element count in \(elementCounts)")
        precondition(buckets.flatMap { $0 }.sorted() == Array(elementCounts.indices),
                     "GradientBuckets: buckets \(buckets) must list each of the \(elementCounts.count) gradients once")
        self.elementCounts = elementCounts
        self.buckets = buckets
        self.communicator = communicator
        var location = [(bucket: Int, offset: Int)](repeating: (0, 0), count: elementCounts.count)
        var bucketCounts = [Int]()
        for (b, members) in buckets.enumerated() {
            var offset = 0
            for i in members {
                location[i] = (b, offset)
                offset += elementCounts[i]
            }
            bucketCounts.append(offset)
        }
        self.location = location
        self.bucketCounts = bucketCounts
        self.buffers = communicator.usesMPI
            ? bucketCounts.map { Tensor(shape: [$0], category: .gradients) } : []
        self.targets = Array(repeating: nil, count: elementCounts.count)
        self.missing = buckets.map(\.count)
        self.pending = Array(repeating: nil, count: buckets.count)
    }

    /// PyTorch DDP's assignment (`compute_bucket_assignment_by_size`): gradients in reverse
    /// registration order, a bucket closed as soon as it holds `capBytes` or more. A bucket thus
    /// exceeds the cap only by its last gradient, and a gradient larger than the cap is a bucket
    /// of its own. Empty gradients join whichever bucket is open.
    public static func partition(elementCounts: [Int], capBytes: Int) -> [[Int]] {
        precondition(capBytes > 0, "GradientBuckets.partition: cap \(capBytes) must be positive")
        var buckets = [[Int]](), current = [Int](), bytes = 0
        for i in elementCounts.indices.reversed() {
            current.append(i)
            bytes += elementCounts[i] * MemoryLayout<Float>.stride
            if bytes >= capBytes {
                buckets.append(current)
                current = []
                bytes = 0
            }
        }
        if !current.isEmpty { buckets.append(current) }
        return buckets
    }

    /// Says that gradient `index` is final for this step: copies it into its bucket, starts the
    /// reductions of every bucket now complete whose predecessors have started, and lets MPI
    /// advance those in flight. `gradient` (contiguous, `elementCounts[index]` elements) receives
    /// the average in `finish()`.
    /// - Throws: `.gradientMarkedTwice`, or an MPI failure.
    public func markReady(_ index: Int, gradient: Tensor) throws {
        precondition(elementCounts.indices.contains(index), "GradientBuckets: no gradient \(index)")
        precondition(gradient.count == elementCounts[index] && gradient.isContiguous,
                     "GradientBuckets: gradient \(index) has shape \(gradient.shape), expected \(elementCounts[index]) contiguous elements")
        guard targets[index] == nil else { throw DataParallelError.gradientMarkedTwice(index: index) }
        targets[index] = gradient
        let (b, offset) = location[index]
        missing[b] -= 1
        guard communicator.usesMPI else { return }
        buffers[b].pointer.advanced(by: offset).update(from: gradient.pointer, count: gradient.count)
        try startReadyBuckets()
        try progress()
    }

    /// Whether gradient `index` has been marked ready this step.
    public func isMarked(_ index: Int) -> Bool { targets[index] != nil }

    /// Lets MPI advance the reductions in flight (`MPI_Test` on each). Open MPI moves
    /// non-blocking collectives forward only inside MPI calls, and `markReady` calls this; a
    /// caller with long computations between gradients may call it in between as well.
    public func progress() throws {
        for case let reduction? in pending { _ = try reduction.isComplete() }
    }

    /// Waits for every bucket, then writes the average over the ranks into each gradient given
    /// to `markReady`, and resets for the next step.
    /// - Throws: `.gradientsNotReady` (after waiting for the reductions already started) when a
    ///   gradient was not marked, or an MPI failure. Either leaves the ranks out of step: abort.
    public func finish() throws {
        defer { reset() }
        let notReady = targets.indices.filter { targets[$0] == nil }
        guard communicator.usesMPI else {
            if !notReady.isEmpty { throw DataParallelError.gradientsNotReady(indices: notReady) }
            return
        }
        let started = Date()
        for reduction in pending { try reduction?.wait() }
        lastWaitSeconds = Date().timeIntervalSince(started)
        if !notReady.isEmpty { throw DataParallelError.gradientsNotReady(indices: notReady) }
        for (b, members) in buckets.enumerated() {
            let buffer = buffers[b]
            Communicator.divide(UnsafeMutableBufferPointer(start: buffer.pointer, count: bucketCounts[b]),
                                by: communicator.size)
            for i in members {
                guard let target = targets[i] else { continue }
                target.pointer.update(from: buffer.pointer.advanced(by: location[i].offset), count: target.count)
            }
        }
    }

    /// Starts, in bucket order, every bucket whose gradients are all marked.
    private func startReadyBuckets() throws {
        while nextToStart < buckets.count && missing[nextToStart] == 0 {
            let buffer = buffers[nextToStart]
            pending[nextToStart] = try communicator.startAllReduceSum(
                UnsafeMutableBufferPointer(start: buffer.pointer, count: bucketCounts[nextToStart]), owner: buffer.storage)
            nextToStart += 1
        }
    }

    private func reset() {
        for reduction in pending { try? reduction?.wait() }
        targets = Array(repeating: nil, count: elementCounts.count)
        missing = buckets.map(\.count)
        pending = Array(repeating: nil, count: buckets.count)
        nextToStart = 0
    }
}

import Foundation

/// The runtime's accounting-only mode: inside `DryRun.run`, every storage the calling thread
/// creates is counted in the dry run's own `ledger`, exactly as `Memory` would count it, but no
/// bytes are allocated; kernels skip their arithmetic and count their scratch through the size
/// queries they share with their tiling (`Conv2d+Workspace.swift`). So the real model code
/// (forward, loss, autograd backward, recompute, optimizer step) runs on shapes alone, and the
/// ledger's peak is the step's `Memory.peak` without the step: this is the memory planner
/// (`MemoryPlanner.swift` in DenseNetModels).
///
/// A storage of a dry run points at `sentinel`, a reserved range of address space that can be
/// neither read nor written, so a kernel that forgot to skip its arithmetic faults at once
/// instead of writing somewhere. The mode belongs to one thread: other threads allocate for
/// real meanwhile.
public final class DryRun: @unchecked Sendable {
    /// The bytes this dry run counted.
    public let ledger = MemoryLedger()
    /// The thread count the kernels plan their splits (and so their scratch) for.
    public let threads: Int
    /// Whether the threads of one kernel call hold their tiles at the same time (the upper
    /// bound of a multi-threaded step) or one after another (its lower bound). On one thread the
    /// two agree.
    public let concurrentTiles: Bool

    init(threads: Int, concurrentTiles: Bool) {
        self.threads = threads
        self.concurrentTiles = concurrentTiles
    }

    /// Runs `body` in a dry run on this thread and returns its result with the dry run.
    public static func run<R>(threads: Int, concurrentTiles: Bool = true,
                              _ body: (DryRun) throws -> R) rethrows -> (result: R, dryRun: DryRun) {
        precondition(threads >= 1, "DryRun.run: threads \(threads) must be at least 1")
        precondition(!isActive, "DryRun.run: a dry run is already active on this thread")
        let run = DryRun(threads: threads, concurrentTiles: concurrentTiles)
        pthread_setspecific(key, Unmanaged.passUnretained(run).toOpaque())
        defer { pthread_setspecific(key, nil) }
        let result = try withExtendedLifetime(run) { try body(run) }
        return (result, run)
    }

    /// The dry run active on this thread, if any.
    @inline(__always)
    public static var current: DryRun? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<DryRun>.fromOpaque(p).takeUnretainedValue()
    }

    /// Whether this thread is in a dry run (kernels then return at once).
    @inline(__always)
    public static var isActive: Bool { pthread_getspecific(key) != nil }

    /// Counts a kernel's scratch of `bytes` (already rounded per storage), allocated and freed
    /// within one call: live together at the call's peak.
    public func scratch(_ bytes: Int) {
        guard bytes > 0 else { return }
        ledger.didAllocate(bytes, .scratch)
        ledger.didFree(bytes, .scratch)
    }

    /// Multiply-add FLOPs of the matrix products and convolutions counted so far.
    public private(set) var productFLOPs = 0.0
    /// The same, each divided by the threads its call splits it across: the step's product
    /// time in units of one thread's rate, were every part as fast as a whole call.
    public private(set) var productFLOPsPerThread = 0.0

    /// Counts a product of `flops` FLOPs split into `parts` parts run concurrently.
    public func product(flops: Double, parts: Int) {
        productFLOPs += flops
        productFLOPsPerThread += flops / Double(max(1, min(parts, threads)))
    }

    /// The most the products' splits let `threads` threads speed them up over one thread:
    /// Σ flops / Σ flops/parts. Only the structure of the splits (products that run on one
    /// thread, or on fewer parts than threads) is in it; memory bandwidth, imbalance and the
    /// parts' lower efficiency are not, so a real speedup is below it.
    public var productSpeedupBound: Double { productFLOPsPerThread > 0 ? productFLOPs / productFLOPsPerThread : 1 }

    /// Names what runs now in the ledger ("forward features.conv0"), for the plan's report.
    public func enter(_ phase: String) { ledger.phase = phase }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "DryRun: pthread_key_create failed (\(status))")
        return key
    }()

    /// The address every dry-run storage points at: address space reserved with no access
    /// rights (1 TiB when the system grants it, less otherwise).
    static let sentinel: UnsafeMutablePointer<Float> = {
        var size = 1 << 40
        while size >= 4096 {
            let p = mmap(nil, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            if let p, p != MAP_FAILED { return p.bindMemory(to: Float.self, capacity: 1) }
            size /= 16
        }
        fatalError("DryRun: cannot reserve address space for the dry-run sentinel")
    }()
}

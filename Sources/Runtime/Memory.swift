import Foundation

/// What a block of tensor memory is for. Every storage the runtime allocates has one.
public enum MemoryCategory: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// Trainable weights and batch-norm running statistics.
    case parameters
    /// Gradients of parameters.
    case gradients
    /// Optimizer state (momentum buffers, Adam moments).
    case optimizerState
    /// Forward activations and their gradients.
    case activations
    /// Workspaces and temporaries: im2col columns, recompute buffers, reductions.
    case scratch

    public var description: String {
        switch self {
        case .parameters: return "parameters"
        case .gradients: return "gradients"
        case .optimizerState: return "optimizer_state"
        case .activations: return "activations"
        case .scratch: return "scratch"
        }
    }
}

/// A copy of the runtime's byte counters at one moment.
public struct MemorySnapshot: Sendable, Equatable, CustomStringConvertible {
    /// Live bytes per category, indexed by `MemoryCategory.rawValue`.
    public var activeByCategory: [Int]
    /// Peak of the total live bytes since the last `Memory.resetPeak()`.
    public var peak: Int
    /// Peak of each category's live bytes since the last reset (each category's own maximum).
    public var peakByCategory: [Int]
    /// Number of storages allocated since the process started.
    public var allocationCount: Int

    public var active: Int { activeByCategory.reduce(0, +) }
    public func active(_ category: MemoryCategory) -> Int { activeByCategory[category.rawValue] }
    public func peak(_ category: MemoryCategory) -> Int { peakByCategory[category.rawValue] }

    /// Live bytes gained since `earlier`, per category (negative when released).
    public func delta(since earlier: MemorySnapshot) -> [MemoryCategory: Int] {
        var d: [MemoryCategory: Int] = [:]
        for c in MemoryCategory.allCases { d[c] = active(c) - earlier.active(c) }
        return d
    }

    public var description: String {
        let parts = MemoryCategory.allCases.map { "\($0)=\(Memory.format(active($0)))" }
        return "active \(Memory.format(active)) peak \(Memory.format(peak)) [" + parts.joined(separator: " ") + "]"
    }
}

/// The runtime's own account of tensor memory: every real `Storage` (tensors, scratch buffers)
/// adds its bytes to `ledger` when allocated and removes them when freed, so live and peak
/// bytes are exact and queryable at any time. Freed blocks go to the bounded `BufferCache`.
/// A dry run (`DryRun.swift`) counts the same storages in a ledger of its own instead.
public enum Memory {
    /// The allocation alignment, in bytes (a cache line; AVX2 loads need 32).
    public static let alignment = 64

    /// The one size function shared by the runtime and the planner: the bytes counted for a
    /// float32 storage of `elements` elements (rounded up to the allocation alignment).
    @inlinable
    public static func byteCount(elements: Int) -> Int {
        let (raw, overflow) = elements.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        precondition(!overflow && raw <= Int.max - alignment, "Memory.byteCount: \(elements) floats do not fit in memory")
        return (raw + alignment - 1) / alignment * alignment
    }

    /// Guards `ledger` and `cache`.
    static let lock = NSLock()
    /// The process's live and peak tensor bytes.
    static let ledger = MemoryLedger()
    /// Freed blocks kept for reuse (BufferCache.swift).
    static let cache = BufferCache(enabled: ProcessInfo.processInfo.environment["DENSENET_BUFFER_CACHE"] != "0")
    /// Whether one mremap may move a range over several mappings (Linux 6.17 and later;
    /// Memory+Pages.swift): true until the kernel first refuses. Guarded by `lock`.
    nonisolated(unsafe) static var movesSpanMappings = true

    /// Counts `bytes` as live in `category` and returns a 64-byte-aligned block of at least
    /// `bytes` (a cached one, a new mapping made partly of cached blocks' pages, or a new one
    /// from jemalloc), with its real size.
    static func allocate(_ bytes: Int, _ category: MemoryCategory) -> (pointer: UnsafeMutableRawPointer, blockBytes: Int) {
        lock.lock()
        ledger.didAllocate(bytes, category)
        let (decision, evicted) = cache.take(bytes, ledger: ledger)
        let spanning = movesSpanMappings
        lock.unlock()
        for block in evicted { freeBlock(block.pointer, block.bytes, mapped: block.isMapped) }
        switch decision {
        case let .reused(pointer, blockBytes):
            if let trace = AllocationTrace.file { AllocationTrace.write(trace, "A \(bytes) \(UInt(bitPattern: pointer)) hit") }
            return (pointer, blockBytes)
        case let .map(blockBytes, donors):
            let (pointer, segments, calls, spanRefused) = mapBlock(blockBytes, movingPagesOf: donors, spanning: spanning)
            lock.lock()
            cache.didMap(pointer, segments: segments)
            cache.didMove(calls: calls)
            if spanRefused { movesSpanMappings = false }
            lock.unlock()
            if let trace = AllocationTrace.file {
                let moved = donors.reduce(0) { $0 + $1.bytes }
                AllocationTrace.write(trace, "A \(bytes) \(UInt(bitPattern: pointer)) miss \(moved)")
            }
            return (pointer, blockBytes)
        case let .allocate(blockBytes):
            var raw: UnsafeMutableRawPointer?
            let status = posix_memalign(&raw, alignment, max(blockBytes, alignment))
            guard status == 0, let raw else {
                fatalError("Storage: out of memory allocating \(format(bytes)) for \(category)")
            }
            if let trace = AllocationTrace.file { AllocationTrace.write(trace, "A \(bytes) \(UInt(bitPattern: raw)) miss") }
            return (raw, blockBytes)
        }
    }

    /// Stops counting `bytes` as live and caches or frees the block of `blockBytes`.
    static func release(_ pointer: UnsafeMutableRawPointer, _ bytes: Int, blockBytes: Int, _ category: MemoryCategory) {
        if let trace = AllocationTrace.file { AllocationTrace.write(trace, "F \(bytes) \(UInt(bitPattern: pointer))") }
        lock.lock()
        ledger.didFree(bytes, category)
        let kept = cache.put(pointer, blockBytes: blockBytes)
        lock.unlock()
        if !kept { freeBlock(pointer, blockBytes, mapped: isMapped(blockBytes: blockBytes)) }
    }

    /// Frees a block of `blockBytes` (a mapping of ours, or jemalloc's), its pages given back on
    /// every thread first when it is large.
    static func freeBlock(_ pointer: UnsafeMutableRawPointer, _ blockBytes: Int, mapped: Bool) {
        returnPagesInParallel(pointer, blockBytes)
        if mapped { unmapBlock(pointer, blockBytes) } else { free(pointer) }
    }

    /// Blocks of at least this many bytes give their pages back on every thread at once.
    static let parallelReturnBytes = 4 << 20

    /// Gives a large block's whole pages back to the system on `Parallel.threadCount` threads
    /// before `free` or `munmap`, which would do it on the calling thread alone (jemalloc returns
    /// freed pages at once, AllocatorConfig.c): unmapping a block of tens of MB page by page was most of the
    /// `allocation` class (serial, 0.03 s/step under `fused`, 0.17 under `checkpoint` on
    /// densenet-bc-100-12 at batch 64, `bench-memory --profile`), time more cores could not shorten.
    /// The block's contents are dead; `free` or `munmap` finds its pages already returned.
    static func returnPagesInParallel(_ pointer: UnsafeMutableRawPointer, _ blockBytes: Int) {
        guard Parallel.threadCount > 1, blockBytes >= parallelReturnBytes else { return }
        let page = Int(getpagesize())
        let start = (Int(bitPattern: pointer) + page - 1) / page * page
        let end = (Int(bitPattern: pointer) + blockBytes) / page * page
        Parallel.forRanges((end - start) / page) { range in
            guard let base = UnsafeMutableRawPointer(bitPattern: start + range.lowerBound * page) else { return }
            _ = madvise(base, range.count * page, MADV_DONTNEED)
        }
    }

    /// Live tensor bytes, all categories.
    public static var active: Int { lock.lock(); defer { lock.unlock() }; return ledger.total }
    /// Live bytes of one category.
    public static func active(_ category: MemoryCategory) -> Int {
        lock.lock(); defer { lock.unlock() }; return ledger.active(category)
    }
    /// Peak of live tensor bytes since the last `resetPeak()`.
    public static var peak: Int { lock.lock(); defer { lock.unlock() }; return ledger.peak }
    /// Peak of one category's live bytes since the last `resetPeak()`.
    public static func peak(_ category: MemoryCategory) -> Int {
        lock.lock(); defer { lock.unlock() }; return ledger.peak(category)
    }

    /// Sets every peak to the current live bytes.
    public static func resetPeak() { lock.lock(); ledger.resetPeak(); lock.unlock() }

    public static func snapshot() -> MemorySnapshot {
        lock.lock(); defer { lock.unlock() }; return ledger.snapshot
    }

    /// "12.5 MiB"
    public static func format(_ bytes: Int) -> String {
        let mib = Double(bytes) / 1_048_576
        if abs(mib) >= 100 { return String(format: "%.0f MiB", mib) }
        if abs(mib) >= 1 { return String(format: "%.1f MiB", mib) }
        return String(format: "%.1f KiB", Double(bytes) / 1024)
    }
}

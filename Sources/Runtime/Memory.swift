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

/// The runtime's own account of tensor memory: every `Storage` (tensors, scratch buffers)
/// adds its bytes here when allocated and removes them when freed, so live and peak bytes
/// are exact and queryable at any time. The planner (`densenet summary`) predicts these same
/// numbers with the same size function, `Memory.byteCount(elements:)`.
public enum Memory {
    /// The allocation alignment, in bytes (a cache line; AVX2 loads need 32).
    public static let alignment = 64

    /// The one size function shared by the runtime and the planner: the bytes counted for a
    /// float32 storage of `elements` elements (rounded up to the allocation alignment).
    @inlinable
    public static func byteCount(elements: Int) -> Int {
        let raw = elements * MemoryLayout<Float>.stride
        return (raw + alignment - 1) / alignment * alignment
    }

    static let lock = NSLock()
    nonisolated(unsafe) private static var activeBytes = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    nonisolated(unsafe) private static var peakBytes = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    nonisolated(unsafe) private static var peakTotal = 0
    nonisolated(unsafe) static var total = 0
    nonisolated(unsafe) static var highWaterTotal = 0
    nonisolated(unsafe) private static var allocations = 0
    // The buffer cache (Memory+BufferCache.swift), under the same lock.
    nonisolated(unsafe) static var cache: [Int: [CachedBlock]] = [:]
    nonisolated(unsafe) static var cached = 0
    nonisolated(unsafe) static var cachedSizes: [Int] = []
    /// Real bytes of live blocks (a reused block may be larger than its storage's count).
    nonisolated(unsafe) static var heldLive = 0
    nonisolated(unsafe) static var cacheSequence = 0
    nonisolated(unsafe) static var cacheStats = BufferCacheStatistics()
    nonisolated(unsafe) static var cacheEnabled = ProcessInfo.processInfo.environment["DENSENET_BUFFER_CACHE"] != "0"

    /// Called with `lock` held.
    static func didAllocateLocked(_ bytes: Int, _ category: MemoryCategory) {
        activeBytes[category.rawValue] += bytes
        total += bytes
        allocations += 1
        if activeBytes[category.rawValue] > peakBytes[category.rawValue] {
            peakBytes[category.rawValue] = activeBytes[category.rawValue]
        }
        if total > peakTotal { peakTotal = total }
        if total > highWaterTotal { highWaterTotal = total }
    }

    /// Called with `lock` held.
    static func didFreeLocked(_ bytes: Int, _ category: MemoryCategory) {
        activeBytes[category.rawValue] -= bytes
        total -= bytes
    }

    /// Live tensor bytes, all categories.
    public static var active: Int { lock.lock(); defer { lock.unlock() }; return total }
    /// Live bytes of one category.
    public static func active(_ category: MemoryCategory) -> Int {
        lock.lock(); defer { lock.unlock() }; return activeBytes[category.rawValue]
    }
    /// Peak of live tensor bytes since the last `resetPeak()`.
    public static var peak: Int { lock.lock(); defer { lock.unlock() }; return peakTotal }
    /// Peak of one category's live bytes since the last `resetPeak()`.
    public static func peak(_ category: MemoryCategory) -> Int {
        lock.lock(); defer { lock.unlock() }; return peakBytes[category.rawValue]
    }

    /// Sets every peak to the current live bytes.
    public static func resetPeak() {
        lock.lock()
        peakTotal = total
        peakBytes = activeBytes
        lock.unlock()
    }

    public static func snapshot() -> MemorySnapshot {
        lock.lock(); defer { lock.unlock() }
        return MemorySnapshot(activeByCategory: activeBytes, peak: peakTotal, peakByCategory: peakBytes,
                              allocationCount: allocations)
    }

    /// "12.5 MiB"
    public static func format(_ bytes: Int) -> String {
        let mib = Double(bytes) / 1_048_576
        if abs(mib) >= 100 { return String(format: "%.0f MiB", mib) }
        if abs(mib) >= 1 { return String(format: "%.1f MiB", mib) }
        return String(format: "%.1f KiB", Double(bytes) / 1024)
    }
}

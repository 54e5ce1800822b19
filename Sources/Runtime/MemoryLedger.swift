/// Live and peak tensor bytes per `MemoryCategory`: the process's own account (`Memory.ledger`,
/// under `Memory.lock`) or the account of one dry run (`DryRun.ledger`, one thread).
///
/// The real runtime and the planner count with this one type and one size function
/// (`Memory.byteCount(elements:)`), which is why a plan equals the measured peak to the byte.
public final class MemoryLedger: @unchecked Sendable {
    /// Live bytes per category, indexed by `MemoryCategory.rawValue`.
    public private(set) var activeByCategory = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    /// Each category's own maximum since the last `resetPeak()`.
    public private(set) var peakByCategory = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    /// Live bytes, all categories.
    public private(set) var total = 0
    /// Peak of `total` since the last `resetPeak()`.
    public private(set) var peak = 0
    /// The most live bytes ever reached (the buffer cache's bound); reset by `resetHighWater()`.
    public private(set) var highWater = 0
    /// Storages counted since the ledger was made.
    public private(set) var allocations = 0
    /// Live bytes per category when `peak` was last raised, and what was running then.
    public private(set) var activeAtPeak = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    public private(set) var phaseAtPeak = "baseline"
    /// What runs now ("forward features.conv0", "backward features.denseblock1"); dry runs set
    /// it, so a plan can say where its peak falls.
    public var phase = "baseline"

    public init() {}

    func didAllocate(_ bytes: Int, _ category: MemoryCategory) {
        let c = category.rawValue
        activeByCategory[c] += bytes
        total += bytes
        allocations += 1
        if activeByCategory[c] > peakByCategory[c] { peakByCategory[c] = activeByCategory[c] }
        if total > peak {
            peak = total
            activeAtPeak = activeByCategory
            phaseAtPeak = phase
        }
        if total > highWater { highWater = total }
    }

    func didFree(_ bytes: Int, _ category: MemoryCategory) {
        activeByCategory[category.rawValue] -= bytes
        total -= bytes
    }

    /// Sets every peak to the current live bytes.
    public func resetPeak() {
        peak = total
        peakByCategory = activeByCategory
        activeAtPeak = activeByCategory
        phaseAtPeak = phase
    }

    func resetHighWater() { highWater = total }

    public func active(_ category: MemoryCategory) -> Int { activeByCategory[category.rawValue] }
    public func peak(_ category: MemoryCategory) -> Int { peakByCategory[category.rawValue] }

    public var snapshot: MemorySnapshot {
        MemorySnapshot(activeByCategory: activeByCategory, peak: peak, peakByCategory: peakByCategory,
                       allocationCount: allocations)
    }
}

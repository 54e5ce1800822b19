import Foundation

// The buffer cache: freed storage blocks kept for reuse by the next allocation of their size.
//
// Why: a training step frees and re-allocates the same buffers every step. With the allocator
// returning freed pages to the system at once (so that peak RSS measures what a step needs),
// every fresh block was page-faulted in again: on DenseNet-BC-100 at batch 64, ~570,000 faults
// per step under `minimal` and a third of the process's CPU time. PyTorch's CUDA caching
// allocator solves the same problem; this one adds a bound so that the cache never raises the
// process's memory above the step's own peak:
//
//     real bytes of live blocks + cached bytes ≤ high water of live tensor bytes (+ 1/32)
//
// A miss that would break the bound first frees the oldest cached blocks. A request may take a
// cached block up to twice its size (best fit), as long as the bytes so wasted in live blocks
// stay under 1/32 of the high water. So RSS stays within ~3 % of the step's peak of tensor bytes
// (what the planner predicts), and from the second step on most allocations are hits. Blocks
// below `minimumBytes` are left to jemalloc's slabs, which reuse them without page faults.
//
// `Memory.active` / `Memory.peak` count live tensor bytes only; cached bytes are reported apart
// (`Memory.cachedBytes`, `Memory.cacheStatistics`). Papers/design-notes.md has the measurements.

/// What the buffer cache did since the process started.
public struct BufferCacheStatistics: Sendable, Equatable {
    /// Allocations served from the cache.
    public var hits = 0
    /// Allocations that asked the system allocator (cache enabled, no block of that size).
    public var misses = 0
    /// Cached blocks freed to keep the bound (or by `releaseCachedBuffers`).
    public var evictions = 0
}

/// Freed blocks by size, bounded by the high water of live bytes. Every method is called with
/// `Memory.lock` held; the blocks it returns for freeing are freed by the caller after unlocking.
final class BufferCache: @unchecked Sendable {
    /// Blocks smaller than this are not cached.
    static let minimumBytes = 16 * 1024
    /// The largest block handed out for a request, as a multiple of the request.
    static let fitRatio = 2
    /// Live blocks may be larger than their storages by at most 1/this of the high water.
    static let wasteDivisor = 32

    struct Block {
        var pointer: UnsafeMutableRawPointer
        var bytes: Int
        /// Release order: lower was freed earlier.
        var sequence: Int
    }

    var enabled: Bool
    private var blocks: [Int: [Block]] = [:]
    /// The sizes present in `blocks`, ascending.
    private var sizes: [Int] = []
    /// Bytes held in the cache.
    private(set) var cached = 0
    /// Real bytes of live blocks (a reused block may be larger than its storage's count).
    private(set) var heldLive = 0
    private var sequence = 0
    private(set) var statistics = BufferCacheStatistics()

    init(enabled: Bool) { self.enabled = enabled }

    /// A block for a new storage of `bytes` (already counted live in `ledger`): the smallest
    /// cached block of `bytes` to `fitRatio × bytes` that keeps the bound, or nil (then the
    /// caller allocates exactly `bytes`), and the cached blocks evicted to make room.
    func take(_ bytes: Int, ledger: MemoryLedger) -> (reused: (pointer: UnsafeMutableRawPointer, blockBytes: Int)?,
                                                     evicted: [(pointer: UnsafeMutableRawPointer, bytes: Int)]) {
        var reused: Block?
        var evicted: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        if enabled && bytes >= BufferCache.minimumBytes {
            // A bigger block than asked for is taken only while the bytes so wasted in live
            // blocks stay under a small share of the high water: they would sit on top of the
            // next peak of live bytes.
            let waste = heldLive - ledger.total + bytes
            let allowance = ledger.highWater / BufferCache.wasteDivisor - waste
            if let size = bestSize(for: bytes, maxExtra: max(0, allowance)) {
                reused = remove(size)
                statistics.hits += 1
            } else {
                statistics.misses += 1
                // Make room so that live + cached stays ≤ high water with the new block.
                while heldLive + bytes + cached > ledger.highWater, let size = oldestSize() {
                    let block = remove(size, oldest: true)
                    evicted.append((block.pointer, block.bytes))
                    statistics.evictions += 1
                }
            }
        }
        heldLive += reused?.bytes ?? bytes
        return (reused.map { ($0.pointer, $0.bytes) }, evicted)
    }

    /// Takes back a freed block; false when the caller must free it (cache off, or too small).
    func put(_ pointer: UnsafeMutableRawPointer, blockBytes: Int) -> Bool {
        heldLive -= blockBytes
        guard enabled && blockBytes >= BufferCache.minimumBytes else { return false }
        sequence += 1
        if blocks[blockBytes] == nil { sizes.insert(blockBytes, at: sizes.partitioningIndex { $0 >= blockBytes }) }
        blocks[blockBytes, default: []].append(Block(pointer: pointer, bytes: blockBytes, sequence: sequence))
        cached += blockBytes
        return true
    }

    /// Empties the cache; the caller frees the returned blocks.
    func removeAll() -> [UnsafeMutableRawPointer] {
        let freed = blocks.values.flatMap { $0.map(\.pointer) }
        statistics.evictions += freed.count
        blocks.removeAll(keepingCapacity: false)
        sizes.removeAll()
        cached = 0
        return freed
    }

    /// The smallest cached size in `bytes ... bytes × fitRatio` wasting at most `maxExtra` bytes.
    private func bestSize(for bytes: Int, maxExtra: Int) -> Int? {
        let at = sizes.partitioningIndex { $0 >= bytes }
        guard at < sizes.count else { return nil }
        let size = sizes[at]
        return size <= bytes * BufferCache.fitRatio && size - bytes <= maxExtra ? size : nil
    }

    /// Removes and returns a cached block of `size` (the newest, or the oldest).
    private func remove(_ size: Int, oldest: Bool = false) -> Block {
        let block = oldest ? blocks[size]!.removeFirst() : blocks[size]!.removeLast()
        if blocks[size]!.isEmpty {
            blocks[size] = nil
            sizes.remove(at: sizes.partitioningIndex { $0 >= size })
        }
        cached -= size
        return block
    }

    /// The size whose oldest cached block was freed longest ago.
    private func oldestSize() -> Int? {
        var best: (size: Int, sequence: Int)?
        for (size, list) in blocks {
            if let first = list.first, best == nil || first.sequence < best!.sequence { best = (size, first.sequence) }
        }
        return best?.size
    }
}

extension Memory {
    /// Blocks smaller than this are not cached.
    public static var cacheMinimumBytes: Int { BufferCache.minimumBytes }
    /// Live blocks may be larger than their storages by at most 1/this of the high water.
    public static var cacheWasteDivisor: Int { BufferCache.wasteDivisor }

    /// Whether freed blocks are kept for reuse (default on; `DENSENET_BUFFER_CACHE=0` turns
    /// it off for experiments). Turning it off releases what is cached.
    public static var cachesBuffers: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cache.enabled }
        set {
            lock.lock(); cache.enabled = newValue; lock.unlock()
            if !newValue { releaseCachedBuffers() }
        }
    }

    /// Bytes held in the cache (not live, not counted by `active`).
    public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cache.cached }

    /// The most live tensor bytes ever reached in this process (the cache's bound).
    public static var highWater: Int { lock.lock(); defer { lock.unlock() }; return ledger.highWater }

    public static var cacheStatistics: BufferCacheStatistics {
        lock.lock(); defer { lock.unlock() }; return cache.statistics
    }

    /// Real bytes of live blocks, cached bytes and the high water, read together (for tests of
    /// the cache's bound).
    public static var cacheBound: (heldLive: Int, cached: Int, highWater: Int) {
        lock.lock(); defer { lock.unlock() }; return (cache.heldLive, cache.cached, ledger.highWater)
    }

    /// Frees every cached block (e.g. before reading a baseline RSS, or after training).
    public static func releaseCachedBuffers() {
        lock.lock()
        let freed = cache.removeAll()
        lock.unlock()
        for p in freed { free(p) }
    }

    /// Releases the cache and lowers the high water to the live bytes, so the cache's bound
    /// starts over (e.g. after a large one-off allocation such as a GEMM probe).
    public static func resetHighWater() {
        releaseCachedBuffers()
        if let trace = AllocationTrace.file { AllocationTrace.write(trace, "R") }
        lock.lock(); ledger.resetHighWater(); lock.unlock()
    }
}

extension Array where Element == Int {
    /// The first index whose element satisfies `predicate` (false…false true…true).
    func partitioningIndex(where predicate: (Int) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if predicate(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

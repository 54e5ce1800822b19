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
// below `cacheMinimumBytes` are left to jemalloc's slabs, which reuse them without page faults.
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

extension Memory {
    /// Blocks smaller than this are not cached.
    public static let cacheMinimumBytes = 16 * 1024
    /// The largest block handed out for a request, as a multiple of the request.
    public static let cacheFitRatio = 2
    /// Live blocks may be larger than their storages by at most 1/this of the high water.
    public static let cacheWasteDivisor = 32

    /// Whether freed blocks are kept for reuse (default on; `DENSENET_BUFFER_CACHE=0` turns
    /// it off for experiments). Turning it off releases what is cached.
    public static var cachesBuffers: Bool {
        get { lock.lock(); defer { lock.unlock() }; return cacheEnabled }
        set {
            lock.lock(); cacheEnabled = newValue; lock.unlock()
            if !newValue { releaseCachedBuffers() }
        }
    }

    /// Bytes held in the cache (not live, not counted by `active`).
    public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cached }

    /// The most live tensor bytes ever reached in this process (the cache's bound).
    public static var highWater: Int { lock.lock(); defer { lock.unlock() }; return highWaterTotal }

    public static var cacheStatistics: BufferCacheStatistics {
        lock.lock(); defer { lock.unlock() }; return cacheStats
    }

    /// Frees every cached block (e.g. before reading a baseline RSS, or after training).
    public static func releaseCachedBuffers() {
        lock.lock()
        let blocks = cache.values.flatMap { $0.map(\.pointer) }
        cacheStats.evictions += blocks.count
        cache.removeAll(keepingCapacity: false)
        cachedSizes.removeAll()
        cached = 0
        lock.unlock()
        for p in blocks { free(p) }
    }

    /// Releases the cache and lowers the high water to the live bytes, so the cache's bound
    /// starts over (e.g. after a large one-off allocation such as a GEMM probe).
    public static func resetHighWater() {
        releaseCachedBuffers()
        lock.lock(); highWaterTotal = total; lock.unlock()
    }

    /// Counts `bytes` as live in `category` and returns a 64-byte-aligned block of at least
    /// `bytes`: the smallest cached block of `bytes` to `cacheFitRatio × bytes` that keeps the
    /// bound, else a new one of exactly `bytes` from jemalloc. Returns the block's real size too.
    static func allocate(_ bytes: Int, _ category: MemoryCategory) -> (pointer: UnsafeMutableRawPointer, blockBytes: Int) {
        var reused: CachedBlock?
        var evicted: [UnsafeMutableRawPointer] = []
        lock.lock()
        didAllocateLocked(bytes, category)
        let cacheable = cacheEnabled && bytes >= cacheMinimumBytes
        if cacheable {
            // A bigger block than asked for is taken only while the bytes so wasted in live
            // blocks stay under a small share of the high water: they would sit on top of the
            // next peak of live bytes.
            let waste = heldLive - total + bytes
            let allowance = highWaterTotal / cacheWasteDivisor - waste
            if let size = bestCachedSize(for: bytes, maxExtra: max(0, allowance)) {
                reused = takeCached(size)
                cacheStats.hits += 1
            } else {
                cacheStats.misses += 1
                // Make room so that live + cached stays ≤ high water with the new block.
                while heldLive + bytes + cached > highWaterTotal, let size = oldestCachedSize() {
                    evicted.append(takeCached(size, oldest: true).pointer)
                    cacheStats.evictions += 1
                }
            }
        }
        let blockBytes = reused?.bytes ?? bytes
        heldLive += blockBytes
        lock.unlock()
        for p in evicted { free(p) }
        if let reused { return (reused.pointer, reused.bytes) }
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, alignment, max(bytes, alignment))
        guard status == 0, let raw else {
            fatalError("Storage: out of memory allocating \(format(bytes)) for \(category)")
        }
        return (raw, bytes)
    }

    /// Stops counting `bytes` as live and caches or frees the block of `blockBytes`.
    static func release(_ pointer: UnsafeMutableRawPointer, _ bytes: Int, blockBytes: Int, _ category: MemoryCategory) {
        lock.lock()
        didFreeLocked(bytes, category)
        heldLive -= blockBytes
        let keep = cacheEnabled && blockBytes >= cacheMinimumBytes
        if keep {
            cacheSequence += 1
            if cache[blockBytes] == nil {
                let at = cachedSizes.partitioningIndex(where: { $0 >= blockBytes })
                cachedSizes.insert(blockBytes, at: at)
            }
            cache[blockBytes, default: []].append(CachedBlock(pointer: pointer, bytes: blockBytes, sequence: cacheSequence))
            cached += blockBytes
        }
        lock.unlock()
        if !keep { free(pointer) }
    }

    /// The smallest cached size in `bytes ... bytes × cacheFitRatio` wasting at most
    /// `maxExtra` bytes. Called with the lock held.
    private static func bestCachedSize(for bytes: Int, maxExtra: Int) -> Int? {
        let at = cachedSizes.partitioningIndex(where: { $0 >= bytes })
        guard at < cachedSizes.count else { return nil }
        let size = cachedSizes[at]
        return size <= bytes * cacheFitRatio && size - bytes <= maxExtra ? size : nil
    }

    /// Removes and returns a cached block of `size` (the newest, or the oldest). Lock held.
    private static func takeCached(_ size: Int, oldest: Bool = false) -> CachedBlock {
        let block = oldest ? cache[size]!.removeFirst() : cache[size]!.removeLast()
        if cache[size]!.isEmpty {
            cache[size] = nil
            cachedSizes.remove(at: cachedSizes.partitioningIndex(where: { $0 >= size }))
        }
        cached -= size
        return block
    }

    /// The size whose oldest cached block was freed longest ago. Called with the lock held.
    private static func oldestCachedSize() -> Int? {
        var best: (size: Int, sequence: Int)?
        for (size, blocks) in cache {
            if let first = blocks.first, best == nil || first.sequence < best!.sequence {
                best = (size, first.sequence)
            }
        }
        return best?.size
    }
}

struct CachedBlock {
    var pointer: UnsafeMutableRawPointer
    var bytes: Int
    /// Release order: lower was freed earlier.
    var sequence: Int
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

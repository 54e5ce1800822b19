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
// A miss that would break the bound first evicts cached blocks (the largest first for a block of
// 256 KiB or more, which takes over their pages rather than faulting fresh ones in:
// Memory+Pages.swift; the oldest first otherwise). A request may take a
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
    /// Cached blocks taken out to keep the bound (their pages freed, or moved into the new
    /// block), or freed by `releaseCachedBuffers`.
    public var evictions = 0
    /// Misses that took over the pages of evicted blocks (Memory+Pages.swift).
    public var assembled = 0
    /// Bytes of evicted blocks' pages moved into new blocks instead of freed and faulted in anew.
    public var movedBytes = 0
    /// mremap calls that moved them: one per donor where the kernel moves a range over several
    /// mappings (Linux 6.17 and later), else one per run of pages (Memory+Pages.swift).
    public var moveCalls = 0
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

    /// Most runs of pages a new block made of cached blocks' pages may have (each run is a kernel
    /// mapping of its own, and a process may have at most `vm.max_map_count`, 65,530 by default).
    /// At 8, the first bound, DenseNet-BC-100's `checkpoint` refused donations of ~330 MB a step
    /// and faulted them in anew; at 128 it faults ~20 MB (replayed traces), and over 150 steps
    /// the process held ~950 mappings, flat (Papers/design-notes.md, "Up to 128 runs a block").
    static let maximumSegments = 128
    /// Most runs beyond one per block over all blocks, live and cached, before the rest of a
    /// split block stops being kept (a guard far below `vm.max_map_count`).
    static let maximumExtraSegments = 16_384

    struct Block {
        var pointer: UnsafeMutableRawPointer
        var bytes: Int
        /// Release order: lower was freed earlier.
        var sequence: Int
        /// For a mapped block (Memory+Pages.swift), the byte lengths of its runs of pages from its
        /// start, each run inside one kernel mapping (what one mremap can move); empty for jemalloc's.
        var segments: [Int]

        /// Whether it is a mapping of ours (to unmap) rather than jemalloc's (to free).
        var isMapped: Bool { !segments.isEmpty }

        /// Its runs beyond the first (what it adds to `extraSegments`).
        var extraRuns: Int { max(0, segments.count - 1) }

        /// A mapped block cut at `bytes` (whole pages, at most its size): its first `bytes` and
        /// what follows, if anything. A run cut in two is two runs, each inside the same mapping.
        func split(at bytes: Int) -> (first: Block, rest: Block?) {
            precondition(isMapped && bytes > 0 && bytes <= self.bytes, "BufferCache.Block.split at \(bytes) of \(self.bytes)")
            var first: [Int] = [], rest: [Int] = [], offset = 0
            for run in segments {
                if offset + run <= bytes { first.append(run) }
                else if offset >= bytes { rest.append(run) }
                else { first.append(bytes - offset); rest.append(offset + run - bytes) }
                offset += run
            }
            let head = Block(pointer: pointer, bytes: bytes, sequence: sequence, segments: first)
            guard bytes < self.bytes else { return (head, nil) }
            return (head, Block(pointer: pointer + bytes, bytes: self.bytes - bytes, sequence: sequence, segments: rest))
        }
    }

    /// What `take` decided for a new storage.
    enum Decision {
        /// A cached block, reused as it is.
        case reused(pointer: UnsafeMutableRawPointer, blockBytes: Int)
        /// A new block of `blockBytes` from jemalloc.
        case allocate(blockBytes: Int)
        /// A new mapping of `blockBytes` whose start receives the pages of `donors` (cached mapped
        /// blocks, already taken out of the cache), in order; the rest is fresh pages.
        case map(blockBytes: Int, donors: [Block])
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
    /// The runs of live mapped blocks made of more than one (`Block.segments`), by address.
    private var liveSegments: [UnsafeMutableRawPointer: [Int]] = [:]
    /// Runs beyond one per mapped block, live and cached.
    private var extraSegments = 0
    private(set) var statistics = BufferCacheStatistics()

    init(enabled: Bool) { self.enabled = enabled }

    /// What to give a new storage of `bytes` (already counted live in `ledger`): the smallest
    /// cached block of `bytes` to `fitRatio × bytes` that keeps the bound (for a mapped size,
    /// `Memory.isMapped`, cut to its whole pages when the rest is a mapped size too, the rest
    /// staying cached); else a new block, for which cached blocks are evicted until the bound
    /// holds, the largest first for a mapped size and the oldest otherwise. A new block of a mapped
    /// size takes over the pages of the mapped blocks so evicted, as many as it has room for (the
    /// rest of the last one stays cached when the bound allows); the others are returned to be
    /// freed.
    func take(_ bytes: Int, ledger: MemoryLedger) -> (decision: Decision, evicted: [Block]) {
        let mapped = Memory.isMapped(blockBytes: bytes)
        let blockBytes = mapped ? Memory.mappedBlockBytes(bytes) : bytes
        var evicted: [Block] = [], donors: [Block] = []
        if enabled && bytes >= BufferCache.minimumBytes {
            // A bigger block than asked for is taken only while the bytes so wasted in live
            // blocks stay under a small share of the high water: they would sit on top of the
            // next peak of live bytes.
            let waste = heldLive - ledger.total + bytes
            let allowance = ledger.highWater / BufferCache.wasteDivisor - waste
            if let size = bestSize(for: bytes, maxExtra: max(0, allowance)) {
                var block = remove(size)
                // A mapped request keeps only the pages it needs of a bigger mapped block: the
                // rest stays cached (when still of a mapped size) instead of sitting unused in a
                // live block on top of the next peak.
                if mapped && block.isMapped && Memory.isMapped(blockBytes: block.bytes - blockBytes)
                    && extraSegments < BufferCache.maximumExtraSegments {
                    extraSegments -= block.extraRuns
                    let (head, rest) = block.split(at: blockBytes)
                    block = head
                    extraSegments += head.extraRuns
                    if let rest { reinsert(rest) }
                }
                if block.segments.count > 1 { liveSegments[block.pointer] = block.segments }
                statistics.hits += 1
                heldLive += block.bytes
                return (.reused(pointer: block.pointer, blockBytes: block.bytes), [])
            }
            statistics.misses += 1
            var left = mapped ? blockBytes : 0   // bytes of the new block no cached pages go to yet
            var runs = 0
            // Make room so that live + cached stays ≤ high water with the new block. The pages
            // of an evicted mapped block go into the new one, as far as it has room; for a mapped
            // request the largest cached block goes first (fewest runs, and its rest stays cached),
            // for a jemalloc one the oldest.
            while heldLive + blockBytes + cached > ledger.highWater, let size = mapped ? sizes.last : oldestSize() {
                let block = remove(size, oldest: true)
                statistics.evictions += 1
                extraSegments -= block.extraRuns
                if left > 0 && block.isMapped {
                    let (moved, rest) = block.split(at: min(left, block.bytes))
                    if runs + moved.segments.count + (moved.bytes < left ? 1 : 0) <= BufferCache.maximumSegments {
                        donors.append(moved)
                        left -= moved.bytes
                        runs += moved.segments.count
                        if let rest {
                            // Only what the bound needs gone leaves the cache: the rest stays
                            // cached while the process's mappings allow the one more run.
                            if heldLive + blockBytes + cached + rest.bytes <= ledger.highWater,
                               Memory.isMapped(blockBytes: rest.bytes),   // (mapped ⇔ that size, Memory+Pages.swift)
                               extraSegments < BufferCache.maximumExtraSegments {
                                reinsert(rest)
                            } else {
                                evicted.append(rest)
                            }
                        }
                        continue
                    }
                }
                evicted.append(block)
            }
            if !donors.isEmpty {
                statistics.assembled += 1
                statistics.movedBytes += blockBytes - left
            }
        }
        heldLive += blockBytes
        return (mapped ? .map(blockBytes: blockBytes, donors: donors) : .allocate(blockBytes: blockBytes), evicted)
    }

    /// Counts the mremap calls that moved a new block's pages.
    func didMove(calls: Int) { statistics.moveCalls += calls }

    /// Records the runs of a new mapped block once it is mapped.
    func didMap(_ pointer: UnsafeMutableRawPointer, segments: [Int]) {
        extraSegments += segments.count - 1
        if segments.count > 1 { liveSegments[pointer] = segments }
    }

    /// Takes back a freed block; false when the caller must free it (cache off, or too small).
    func put(_ pointer: UnsafeMutableRawPointer, blockBytes: Int) -> Bool {
        heldLive -= blockBytes
        let segments = Memory.isMapped(blockBytes: blockBytes) ? liveSegments.removeValue(forKey: pointer) ?? [blockBytes] : []
        guard enabled && blockBytes >= BufferCache.minimumBytes else {
            extraSegments -= max(0, segments.count - 1)
            return false
        }
        sequence += 1
        insert(Block(pointer: pointer, bytes: blockBytes, sequence: sequence, segments: segments))
        return true
    }

    /// Puts the rest of a split cached block back (its runs counted again).
    private func reinsert(_ block: Block) {
        insert(block)
        extraSegments += block.extraRuns
    }

    /// Adds a block to the cache in its place in release order (the end, for a block just freed).
    private func insert(_ block: Block) {
        if blocks[block.bytes] == nil { sizes.insert(block.bytes, at: sizes.partitioningIndex { $0 >= block.bytes }) }
        let at = blocks[block.bytes]?.lastIndex { $0.sequence <= block.sequence }.map { $0 + 1 } ?? 0
        blocks[block.bytes, default: []].insert(block, at: at)
        cached += block.bytes
    }

    /// Empties the cache; the caller frees the returned blocks.
    func removeAll() -> [Block] {
        let freed = blocks.values.flatMap { $0 }
        extraSegments -= freed.reduce(0) { $0 + $1.extraRuns }
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
        for block in freed { Memory.freeBlock(block.pointer, block.bytes, mapped: block.isMapped) }
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

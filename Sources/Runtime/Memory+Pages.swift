import CAllocatorConfig
import Foundation

// Large blocks as mappings of the runtime's own, so that a new block can take over the pages of
// cached ones instead of faulting fresh pages in (issue 13).
//
// Why: the buffer cache (BufferCache.swift) keeps RSS at the step's own peak, so a request with
// no cached block of its size (within 2×) was a miss: cached blocks were freed to keep the bound
// and the new block was faulted in, page by page, zero-filled by the kernel: 1.5 µs a 4 KiB page
// on the development machine (a C loop over a fresh 256 MiB mapping; `madvise(DONTNEED)` of it
// 0.23 µs a page, `mremap` of all of it 56 µs). Under `checkpoint` every concatenation is k
// channels wider than the last, so nearly every one missed: ~500,000 faults a step on
// DenseNet-BC-100 at batch 64, a fifth of the step (Papers/design-notes.md, "Allocator").
//
// Blocks of `mappedMinimumBytes` and more are mmap'd here (jemalloc serves the rest). On a miss,
// the cached blocks the bound makes the cache evict give their pages to the new block instead of
// the system: `mapBlock` moves them into a new mapping with mremap (page table entries move,
// nothing is copied, nothing faults), and only the rest of the block is fresh pages. When the new
// block needs less than the last evicted block holds, that block is split: the rest stays cached
// if the bound allows. Contents of moved pages are stale, as a reused block's are: a storage's
// floats start uninitialised. The bound is unchanged (moved bytes leave the cache as they join
// the live block), so peak RSS still follows the tensor peak.
//
// Each run of pages moved in stays a kernel mapping of its own (the kernel merges neighbouring
// anonymous mappings only when they came from the same one), and before Linux 6.17 one mremap
// moves pages within one mapping only, so a block records its runs (`BufferCache.Block.segments`)
// and the cache bounds them: per block and over the process (`vm.max_map_count`, 65,530 by
// default). Where the kernel moves a range over several mappings, a block's runs go in one call.

extension Memory {
    /// Blocks of at least this many bytes are mappings of the runtime's own (rounded up to
    /// whole pages); smaller ones come from jemalloc.
    public static let mappedMinimumBytes = 256 << 10

    /// The system's page size.
    static let pageBytes = Int(getpagesize())

    /// Whether a block of `blockBytes` is a mapping of ours: every request of
    /// `mappedMinimumBytes` or more gets one, and jemalloc's blocks are exactly their
    /// (smaller) request.
    @inline(__always)
    static func isMapped(blockBytes: Int) -> Bool { blockBytes >= mappedMinimumBytes }

    /// The bytes of the mapping for a request of `bytes`: whole pages.
    static func mappedBlockBytes(_ bytes: Int) -> Int { (bytes + pageBytes - 1) / pageBytes * pageBytes }

    /// Maps a new block of `blockBytes` and moves into it, from its start and in order, the
    /// pages of `donors` (mapped blocks out of the cache, whose sizes add up to at most
    /// `blockBytes`). Returns the block and the byte lengths of its runs of pages, each inside
    /// one kernel mapping. A run the kernel refuses to move (it may refuse when the process has
    /// too many mappings) is unmapped instead and its part of the block is fresh pages. With
    /// `spanning`, a donor of several runs moves in one call (Linux 6.17 and later);
    /// `spanRefused` says the kernel refused that, so the caller stops asking. Runs outside the
    /// cache's lock: `calls` (mremaps made) is the caller's to count under it.
    static func mapBlock(_ blockBytes: Int, movingPagesOf donors: [BufferCache.Block], spanning: Bool)
        -> (pointer: UnsafeMutableRawPointer, segments: [Int], calls: Int, spanRefused: Bool) {
        guard let block = dn_map_pages(blockBytes) else {
            fatalError("Storage: out of memory mapping \(format(blockBytes)) (mmap: \(String(cString: strerror(errno))))")
        }
        var segments: [Int] = []
        var lastIsFresh = false   // the previous run is still the new mapping's own
        func appendRun(_ bytes: Int, fresh: Bool) {
            if fresh && lastIsFresh { segments[segments.count - 1] += bytes } else { segments.append(bytes) }
            lastIsFresh = fresh
        }
        var offset = 0, calls = 0, spanning = spanning, spanRefused = false
        for donor in donors {
            // A donor of several runs in one call where the kernel moves a range over several
            // mappings (Linux 6.17 and later): 7,619 mremap calls over 4 steps of DenseNet-BC-100's
            // `checkpoint` became 1,420, though their kernel time, which follows the mappings
            // moved, barely fell (Papers/design-notes.md, "Up to 128 runs a block").
            if donor.segments.count > 1 && spanning {
                calls += 1
                if dn_move_pages(donor.pointer, donor.bytes, block + offset) == 0 {
                    for run in donor.segments { appendRun(run, fresh: false) }
                    offset += donor.bytes
                    continue
                }
                // Refused (an older kernel: nothing moved) or failed part way: run by run from
                // here on, each run whose move fails getting fresh pages.
                (spanning, spanRefused) = (false, true)
            }
            var source = donor.pointer
            for run in donor.segments {
                calls += 1
                if dn_move_pages(source, run, block + offset) == 0 {
                    appendRun(run, fresh: false)
                } else {
                    munmap(source, run)   // (already gone if a failed call moved it)
                    let status = dn_map_pages_at(block + offset, run)
                    precondition(status == 0, "Memory.mapBlock: could not map \(format(run)) of fresh pages after a failed move: \(String(cString: strerror(status)))")
                    appendRun(run, fresh: true)
                }
                source += run
                offset += run
            }
        }
        precondition(offset <= blockBytes, "Memory.mapBlock: donors of \(offset) bytes for a block of \(blockBytes)")
        if offset < blockBytes { appendRun(blockBytes - offset, fresh: true) }
        return (block, segments, calls, spanRefused)
    }

    /// Unmaps a mapped block (all of its runs: munmap takes a range over several mappings).
    static func unmapBlock(_ pointer: UnsafeMutableRawPointer, _ blockBytes: Int) {
        let status = munmap(pointer, blockBytes)
        precondition(status == 0, "Memory.unmapBlock: munmap of \(blockBytes) bytes failed: \(String(cString: strerror(errno)))")
    }
}

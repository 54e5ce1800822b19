import XCTest
@testable import Runtime

/// Large blocks are mappings of the runtime's own, and a miss takes over the pages of the cached
/// blocks it evicts (Sources/Runtime/Memory+Pages.swift): the pages' old contents show where they
/// came from (fresh pages read zero).
final class BufferCachePagesTests: XCTestCase {
    override func setUp() { Memory.resetHighWater() }
    override func tearDown() { Memory.releaseCachedBuffers() }

    private static let mebibyteFloats = (1 << 20) / MemoryLayout<Float>.stride

    /// A storage of `mebibytes` MiB with every float set to `value`.
    private func filled(_ mebibytes: Int, _ value: Float) -> Tensor {
        let t = Tensor(shape: [mebibytes * Self.mebibyteFloats], category: .scratch)
        t.storage.base.update(repeating: value, count: t.storage.count)
        return t
    }

    /// The distinct values of `t`'s floats in each MiB, in order ("1 1 0" for two MiB of 1 then zeros).
    private func valuesPerMebibyte(_ t: Tensor) -> String {
        (0..<t.storage.count / Self.mebibyteFloats).map { m -> String in
            let start = t.storage.base + m * Self.mebibyteFloats
            let values = Set(UnsafeBufferPointer(start: start, count: Self.mebibyteFloats))
            return values.count == 1 ? String(format: "%g", values.first!) : "mixed"
        }.joined(separator: " ")
    }

    func testLargeBlocksArePageAlignedMappings() {
        let t = filled(1, 3)
        XCTAssertEqual(Int(bitPattern: t.storage.base) % Int(getpagesize()), 0)
        XCTAssertTrue(Memory.isMapped(blockBytes: Memory.byteCount(elements: t.storage.count)))
        XCTAssertFalse(Memory.isMapped(blockBytes: Memory.mappedMinimumBytes - Memory.alignment))
    }

    /// A 2 MiB block is freed, then 5 MiB are asked for: no cached block fits, the bound makes
    /// the cache evict the 2 MiB block, and its pages (still holding 1s) become the new block's
    /// first 2 MiB; only the other 3 MiB are faulted in.
    func testAnEvictedBlockGivesItsPagesToTheNewBlock() {
        let before = Memory.cacheStatistics
        var a: Tensor? = filled(2, 1)
        a = nil
        XCTAssertNil(a)
        XCTAssertEqual(Memory.cachedBytes, 2 << 20)
        let b = Tensor(shape: [5 * Self.mebibyteFloats], category: .scratch)
        XCTAssertEqual(valuesPerMebibyte(b), "1 1 0 0 0", "the evicted block's pages did not move into the new one")
        // Writing the moved 2 MiB faults nothing (fresh pages, once read, would fault on write).
        let faults = ProcessProbe.minorPageFaults
        b.storage.base.update(repeating: 2, count: 2 * Self.mebibyteFloats)
        XCTAssertLessThan(ProcessProbe.minorPageFaults - faults, (2 << 20) / Int(getpagesize()) / 10,
                          "writing the moved pages faulted them in")
        XCTAssertEqual(Memory.cachedBytes, 0)
        XCTAssertEqual(Memory.cacheStatistics.assembled, before.assembled + 1)
        XCTAssertEqual(Memory.cacheStatistics.movedBytes, before.movedBytes + 2 << 20)
        assertCacheBound()
    }

    /// An 8 MiB block is freed, then 3 MiB are asked for (under half of it: no hit): the new
    /// block takes its first 3 MiB, and the other 5 MiB stay cached (the bound allows them), so
    /// that a 5 MiB request then gets exactly them.
    func testTheRestOfASplitBlockStaysCachedWhileTheBoundAllows() {
        var x: Tensor? = filled(8, 4)
        let address = x!.storage.base
        x!.storage.base.advanced(by: 3 * Self.mebibyteFloats).update(repeating: 5, count: 5 * Self.mebibyteFloats)
        x = nil
        XCTAssertNil(x)
        let y = Tensor(shape: [3 * Self.mebibyteFloats], category: .scratch)
        XCTAssertEqual(valuesPerMebibyte(y), "4 4 4")
        XCTAssertEqual(Memory.cachedBytes, 5 << 20, "the rest of the split block was not kept")
        assertCacheBound()
        let z = Tensor(shape: [5 * Self.mebibyteFloats], category: .scratch)
        XCTAssertEqual(z.storage.base, address + 3 * Self.mebibyteFloats, "the kept rest did not serve its own size")
        XCTAssertEqual(valuesPerMebibyte(z), "5 5 5 5 5")
        XCTAssertEqual(Memory.cachedBytes, 0)
        assertCacheBound()
        withExtendedLifetime((y, z)) {}
    }

    /// A block made of moved pages and fresh ones has two runs (two kernel mappings); given to
    /// a third block, both runs move, contents and order kept: in one mremap where the kernel
    /// moves a range over several mappings (Linux 6.17 and later), else one per run, as also
    /// when that is switched off.
    func testABlockOfSeveralRunsMovesWhole() {
        for spanning in [true, false] {
            Memory.releaseCachedBuffers()
            Memory.resetHighWater()
            Memory.lock.lock(); Memory.movesSpanMappings = spanning; Memory.lock.unlock()
            var a: Tensor? = filled(2, 1)
            a = nil
            XCTAssertNil(a)
            var b: Tensor? = Tensor(shape: [3 * Self.mebibyteFloats], category: .scratch)
            XCTAssertEqual(valuesPerMebibyte(b!), "1 1 0")
            b!.storage.base.advanced(by: 2 * Self.mebibyteFloats).update(repeating: 2, count: Self.mebibyteFloats)
            b = nil
            XCTAssertNil(b)
            let calls = Memory.cacheStatistics.moveCalls
            let c = Tensor(shape: [7 * Self.mebibyteFloats], category: .scratch)
            XCTAssertEqual(valuesPerMebibyte(c), "1 1 2 0 0 0 0", "spanning \(spanning)")
            Memory.lock.lock(); let stillSpanning = Memory.movesSpanMappings; Memory.lock.unlock()
            // One call when the kernel took the range whole; the refused call and two runs when not.
            XCTAssertEqual(Memory.cacheStatistics.moveCalls - calls, spanning ? (stillSpanning ? 1 : 3) : 2,
                           "spanning \(spanning), kernel moves ranges over mappings: \(stillSpanning)")
            assertCacheBound()
            withExtendedLifetime(c) {}
        }
        Memory.lock.lock(); Memory.movesSpanMappings = true; Memory.lock.unlock()
    }

    /// Twenty cached 1 MiB blocks all go into one 20 MiB block, a run each, oldest first: the
    /// limit of runs a block may have (8 until DenseNet-BC-100's `checkpoint` trace showed it
    /// refused 330 MB of donations a step, Papers/design-notes.md) does not stop them.
    func testManyEvictedBlocksGiveTheirPagesToOneBlock() {
        var blocks: [Tensor]? = (1...20).map { filled(1, Float($0)) }
        XCTAssertEqual(blocks?.count, 20)
        blocks = nil   // freed in order, 1 first
        XCTAssertEqual(Memory.cachedBytes, 20 << 20)
        let moved = Memory.cacheStatistics.movedBytes
        let faults = ProcessProbe.minorPageFaults
        let big = Tensor(shape: [20 * Self.mebibyteFloats], category: .scratch)
        XCTAssertEqual(valuesPerMebibyte(big), (1...20).map { String($0) }.joined(separator: " "))
        XCTAssertEqual(Memory.cacheStatistics.movedBytes - moved, 20 << 20)
        XCTAssertLessThan(ProcessProbe.minorPageFaults - faults, (20 << 20) / Int(getpagesize()) / 10,
                          "the new block's pages were faulted in, not moved")
        XCTAssertEqual(Memory.cachedBytes, 0)
        assertCacheBound()
    }

    /// A hit on a bigger mapped block keeps only the pages the request needs; the rest (a mapped
    /// size itself) stays cached and serves the next request of its size.
    func testAHitKeepsOnlyThePagesItNeeds() {
        let hold = Tensor(shape: [64 * Self.mebibyteFloats], category: .scratch)   // a waste allowance of 2 MiB
        var x: Tensor? = filled(4, 6)
        let address = x!.storage.base
        x = nil
        XCTAssertNil(x)
        let hits = Memory.cacheStatistics.hits
        let y = Tensor(shape: [5 * Self.mebibyteFloats / 2], category: .scratch)   // 2.5 MiB
        XCTAssertEqual(Memory.cacheStatistics.hits, hits + 1)
        XCTAssertEqual(y.storage.base, address)
        XCTAssertEqual(Memory.cachedBytes, 3 << 19, "the hit kept the block's unused 1.5 MiB")
        assertCacheBound()
        let z = Tensor(shape: [3 * Self.mebibyteFloats / 2], category: .scratch)
        XCTAssertEqual(z.storage.base, address + 5 * Self.mebibyteFloats / 2)
        XCTAssertEqual(Memory.cachedBytes, 0)
        withExtendedLifetime((hold, y, z)) {}
    }

    func testSplittingABlockCutsTheRunItFallsIn() {
        let page = Int(getpagesize())
        let base = UnsafeMutableRawPointer(bitPattern: 1 << 40)!
        let block = BufferCache.Block(pointer: base, bytes: 10 * page, sequence: 7, segments: [3 * page, 5 * page, 2 * page])
        let inside = block.split(at: 4 * page)
        XCTAssertEqual(inside.first.segments, [3 * page, page])
        XCTAssertEqual(inside.first.bytes, 4 * page)
        XCTAssertEqual(inside.rest?.segments, [4 * page, 2 * page])
        XCTAssertEqual(inside.rest?.pointer, base + 4 * page)
        XCTAssertEqual(inside.rest?.bytes, 6 * page)
        XCTAssertEqual(inside.rest?.sequence, 7)
        let onBoundary = block.split(at: 3 * page)
        XCTAssertEqual(onBoundary.first.segments, [3 * page])
        XCTAssertEqual(onBoundary.rest?.segments, [5 * page, 2 * page])
        let whole = block.split(at: 10 * page)
        XCTAssertEqual(whole.first.segments, [3 * page, 5 * page, 2 * page])
        XCTAssertNil(whole.rest)
    }
}

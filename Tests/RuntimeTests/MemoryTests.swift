import XCTest
@testable import Runtime

final class MemoryTests: XCTestCase {
    func testViewsAllocateNothing() {
        let t = Tensor.zeros([8, 4, 3, 3])
        let before = Memory.snapshot()
        let v = t.channels(2..<5)
        let r = v.reshaped([3, 36])
        let n = t.narrow(1, 1..<3)
        XCTAssertEqual(Memory.snapshot().active, before.active)
        XCTAssertEqual(Memory.snapshot().allocationCount, before.allocationCount)
        XCTAssertEqual(v.shape, [3, 4, 3, 3])
        XCTAssertEqual(r.shape, [3, 36])
        XCTAssertTrue(v.isContiguous)
        XCTAssertFalse(n.isContiguous)
        // A write through the view lands in the parent.
        v[0, 0, 0, 0] = 7
        XCTAssertEqual(t[2, 0, 0, 0], 7)
        n[0, 0, 1, 2] = 5
        XCTAssertEqual(t[0, 1, 1, 2], 5)
    }

    func testAllocationAndReleaseReturnLiveBytes() {
        let start = Memory.snapshot()
        do {
            let a = Tensor(shape: [1000], category: .scratch)
            XCTAssertEqual(Memory.active(.scratch) - start.active(.scratch), 4032) // 4000 rounded to 64
            let b = Tensor(shape: [10, 10], category: .gradients)
            XCTAssertEqual(Memory.active - start.active, 4032 + 448)
            withExtendedLifetime((a, b)) {}
        }
        XCTAssertEqual(Memory.active, start.active)
        XCTAssertEqual(Memory.active(.scratch), start.active(.scratch))
    }

    func testPeakIsExactOnAScriptedSequence() {
        Memory.resetPeak()
        let base = Memory.active
        var a: Tensor? = Tensor(shape: [1024])          // 4096
        var b: Tensor? = Tensor(shape: [2048])          // 8192 -> live 12288
        a = nil                                          // live 8192
        var c: Tensor? = Tensor(shape: [512])           // 2048 -> live 10240
        b = nil; c = nil
        XCTAssertNil(a); XCTAssertNil(b); XCTAssertNil(c)
        XCTAssertEqual(Memory.active, base)
        XCTAssertEqual(Memory.peak - base, 12288)
        Memory.resetPeak()
        XCTAssertEqual(Memory.peak, base)
    }

    func testSizeFunctionRoundsToAlignment() {
        XCTAssertEqual(Memory.byteCount(elements: 0), 0)
        XCTAssertEqual(Memory.byteCount(elements: 1), 64)
        XCTAssertEqual(Memory.byteCount(elements: 16), 64)
        XCTAssertEqual(Memory.byteCount(elements: 17), 128)
    }

    func testJemallocIsTheAllocator() {
        XCTAssertNotNil(Jemalloc.version, "jemalloc's mallctl did not answer")
        if ProcessInfo.processInfo.environment["MALLOC_CONF"] == nil {
            XCTAssertEqual(Jemalloc.signedOption("opt.dirty_decay_ms"), 0, "the built-in malloc_conf was not applied")
            XCTAssertEqual(Jemalloc.buildConfig, "dirty_decay_ms:0,muzzy_decay_ms:0")
        }
        // Other threads (dispatch workers, a data loader of another test) may free a little at
        // the same time, so the growth is checked to within 4 MiB of the 64 MiB.
        let before = Jemalloc.stats().allocated
        let raw = malloc(64 << 20)!   // malloc is jemalloc's
        memset(raw, 1, 64 << 20)
        let during = Jemalloc.stats().allocated
        XCTAssertGreaterThanOrEqual(during - before, 60 << 20, "a 64 MiB malloc did not show in jemalloc's stats.allocated")
        free(raw)
        XCTAssertGreaterThanOrEqual(during - Jemalloc.stats().allocated, 60 << 20, "free did not return it to jemalloc")
        // Tensors of 256 KiB and more are the runtime's own mappings (Memory+Pages.swift), not
        // jemalloc's; the buffer cache keeps the block until it is released.
        var big: Tensor? = Tensor(shape: [16 << 20], category: .scratch)
        big!.fill(1)
        XCTAssertLessThan(Jemalloc.stats().allocated - before, 4 << 20, "a 64 MiB tensor came from jemalloc")
        big = nil
        XCTAssertNil(big)
        XCTAssertGreaterThanOrEqual(Memory.cachedBytes, 64 << 20, "the freed block was not cached")
        Memory.releaseCachedBuffers()
        XCTAssertEqual(Memory.cachedBytes, 0)
    }

    func testStatusFieldsParseAtEveryWidth() {
        // /proc/self/status pads with spaces up to 8 digits; from 9.5 GiB on there are none.
        let text = "Name:\tbench\nVmHWM:\t11612345 kB\nVmRSS:\t   40960 kB\n"
        XCTAssertEqual(ProcessProbe.statusField("VmHWM", in: text), 11_612_345 * 1024)
        XCTAssertEqual(ProcessProbe.statusField("VmRSS", in: text), 40_960 * 1024)
        XCTAssertNil(ProcessProbe.statusField("VmPeak", in: text))
    }

    func testPeakRSSReadAndReset() {
        XCTAssertGreaterThan(ProcessProbe.residentBytes, 0)
        var big: Tensor? = Tensor(shape: [64 << 20], category: .scratch) // 256 MiB, touched
        big!.fill(1)
        let peakWith = ProcessProbe.peakResidentBytes
        XCTAssertGreaterThan(peakWith, 256 << 20)
        big = nil
        XCTAssertNil(big)
        XCTAssertTrue(ProcessProbe.resetPeakResident(), "writing /proc/self/clear_refs failed")
        XCTAssertLessThan(ProcessProbe.peakResidentBytes, peakWith - (200 << 20),
                          "VmHWM did not fall after freeing 256 MiB and resetting")
    }
}

final class BLASCoreSelectionTests: XCTestCase {
    func testAVX512CPUsGetTheSkylakeXKernels() {
        let avx512 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl\n"
        XCTAssertEqual(BLASCoreSelection.preferredCoreType(cpuinfo: avx512), "SKYLAKEX")
        let avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
        XCTAssertNil(BLASCoreSelection.preferredCoreType(cpuinfo: avx2))
        let partial = "flags\t\t: avx2 avx512f avx512cd\n"   // AVX-512 foundation only (Knights Landing)
        XCTAssertNil(BLASCoreSelection.preferredCoreType(cpuinfo: partial))
        XCTAssertNil(BLASCoreSelection.preferredCoreType(cpuinfo: ""))
    }
}

final class BufferCacheTests: XCTestCase {
    override func setUp() { Memory.resetHighWater() }
    override func tearDown() { Memory.releaseCachedBuffers() }

    func testAFreedBlockIsReusedBySameSizeAndCountedAsNew() {
        let start = Memory.snapshot()
        let hitsBefore = Memory.cacheStatistics.hits
        var a: Tensor? = Tensor(shape: [100_000], category: .scratch)   // 400,000 bytes
        let address = a!.storage.base
        a = nil
        XCTAssertNil(a)
        XCTAssertEqual(Memory.active, start.active, "a cached block must not count as live")
        let page = Int(getpagesize())
        XCTAssertEqual(Memory.cachedBytes, (400_000 + page - 1) / page * page, "whole pages of a mapped block")
        let b = Tensor(shape: [100_000], category: .activations)
        XCTAssertEqual(b.storage.base, address, "the same-size request did not get the cached block")
        XCTAssertEqual(Memory.cacheStatistics.hits, hitsBefore + 1)
        XCTAssertEqual(Memory.cachedBytes, 0)
        XCTAssertEqual(Memory.active(.activations) - start.active(.activations), Memory.byteCount(elements: 100_000))
    }

    func testSmallBlocksAreNotCached() {
        var a: Tensor? = Tensor(shape: [100], category: .scratch)
        a = nil
        XCTAssertNil(a)
        XCTAssertEqual(Memory.cachedBytes, 0)
    }

    func testALargerBlockServesASmallerRequestWithinTheRatio() {
        // Hold 8 MiB live so the high water leaves a waste allowance of at least 256 KiB.
        let hold = Tensor(shape: [2 << 20], category: .scratch)
        var a: Tensor? = Tensor(shape: [150_000], category: .scratch)   // 600,000 bytes
        let address = a!.storage.base
        a = nil
        XCTAssertNil(a)
        var fits: Tensor? = Tensor(shape: [100_000], category: .scratch) // 2/3 of the block
        XCTAssertEqual(fits!.storage.base, address, "a block under twice the request was not reused")
        assertCacheBound()
        fits = nil
        XCTAssertNil(fits)
        let tooSmall = Tensor(shape: [70_000], category: .scratch)          // under half: a new block
        XCTAssertNotEqual(tooSmall.storage.base, address)
        assertCacheBound()
        withExtendedLifetime((hold, tooSmall)) {}
    }

    func testTheCacheStaysWithinTheHighWaterOnAMixedSequence() {
        // A scripted, repeating "step" of different sizes with overlapping lifetimes.
        var rng = SeededGenerator(seed: 11)
        let sizes = (0..<40).map { _ in 5_000 + Int(rng.next() % 400_000) }
        for _ in 0..<4 {
            var live: [Tensor] = []
            for (i, n) in sizes.enumerated() {
                live.append(Tensor(shape: [n], category: .scratch))
                assertCacheBound()
                if i % 3 == 2 { live.removeFirst(2); assertCacheBound() }
            }
            live.removeAll()
            assertCacheBound()
        }
        XCTAssertGreaterThan(Memory.cacheStatistics.hits, 0)
    }

    func testReleasingAndDisablingEmptyTheCache() {
        var a: Tensor? = Tensor(shape: [1 << 20], category: .scratch)
        a = nil
        XCTAssertNil(a)
        XCTAssertGreaterThan(Memory.cachedBytes, 0)
        Memory.cachesBuffers = false
        defer { Memory.cachesBuffers = true }
        XCTAssertEqual(Memory.cachedBytes, 0, "turning the cache off did not release it")
        var b: Tensor? = Tensor(shape: [1 << 20], category: .scratch)
        b = nil
        XCTAssertNil(b)
        XCTAssertEqual(Memory.cachedBytes, 0, "a disabled cache kept a block")
    }

    /// A large block's pages are given back on every thread before `free` (Memory.swift): every
    /// whole page of an 8 MiB block reads zero afterwards (anonymous pages come back zero-filled),
    /// the bytes outside its whole pages are untouched, and a block under the threshold keeps its
    /// contents.
    func testLargeBlocksReturnTheirPagesOnEveryThread() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let page = Int(getpagesize())
        for threads in [2, 3] {
            Parallel.threadCount = threads
            var raw: UnsafeMutableRawPointer?
            XCTAssertEqual(posix_memalign(&raw, page, 8 << 20 + 2 * page), 0)
            let base = try XCTUnwrap(raw)
            defer { free(base) }
            // The block starts 100 bytes into a page and ends 100 bytes short of one.
            let block = base + 100, bytes = 8 << 20 + page - 200
            memset(base, 7, 8 << 20 + 2 * page)
            Memory.returnPagesInParallel(block, bytes)
            let p = base.assumingMemoryBound(to: UInt8.self)
            let firstWhole = page, lastWhole = page + (bytes + 100 - page) / page * page
            XCTAssertEqual(p[page - 1], 7, "the partial first page is kept")
            XCTAssertEqual(p[lastWhole], 7, "the partial last page is kept")
            var nonzero = 0
            for i in stride(from: firstWhole, to: lastWhole, by: 64) where p[i] != 0 { nonzero += 1 }
            XCTAssertEqual(nonzero, 0, "\(threads) threads left pages of the block unreturned")

            let small = UnsafeMutableRawPointer.allocate(byteCount: Memory.parallelReturnBytes / 2, alignment: page)
            defer { small.deallocate() }
            memset(small, 5, Memory.parallelReturnBytes / 2)
            Memory.returnPagesInParallel(small, Memory.parallelReturnBytes / 2)
            XCTAssertEqual(small.load(fromByteOffset: page * 3, as: UInt8.self), 5)
        }
    }
}

extension XCTestCase {
    /// The invariant the buffer cache keeps: real bytes of live blocks + cached bytes never exceed
    /// the high water of live tensor bytes by more than the waste allowance (1/32).
    func assertCacheBound(file: StaticString = #filePath, line: UInt = #line) {
        let (held, cached, highWater) = Memory.cacheBound
        XCTAssertLessThanOrEqual(held + cached, highWater + highWater / Memory.cacheWasteDivisor,
                                 "held \(held) + cached \(cached) over high water \(highWater)", file: file, line: line)
    }
}

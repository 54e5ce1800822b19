import CThreadPool
import Dispatch
import Foundation

/// Parallel loops over both cores. Kernels split their work into `threadCount` contiguous
/// chunks (one per thread), so each thread streams through its own memory.
///
/// A loop runs on the calling thread and `threadCount − 1` workers of one pool
/// (Sources/CThreadPool), which spin a while between loops instead of sleeping at once: a
/// DenseNet step runs about a thousand loops, and waking sleeping threads for each (as
/// `DispatchQueue.concurrentPerform` does) left a thread idle for 40–60 µs at the start of every
/// loop. A loop started inside another, or from a second thread while one runs, goes to
/// Dispatch instead; on one thread the parts run in turn on the calling thread.
public enum Parallel {
    nonisolated(unsafe) private static var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Threads used by kernels and GEMM splitting (`--threads`). Defaults to the CPU count.
    public static var threadCount: Int {
        get { threads }
        set {
            precondition(newValue >= 1, "Parallel.threadCount must be at least 1, got \(newValue)")
            threads = newValue
        }
    }

    /// Calls `body(i)` for `i` in `0..<count`, concurrently when `count > 1` and
    /// `threadCount > 1`.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        if Profile.isRecording { return profiledForEach(count, body) }
        run(count, body)
    }

    /// Runs the parts on the pool, or on Dispatch where the pool cannot take them.
    @usableFromInline
    static func run(_ count: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var body = body
            let status = withUnsafeMutablePointer(to: &body) { pointer in
                tp_run(count, { context, index in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
                }, pointer, Int32(clamping: threads - 1))
            }
            if status != 0 { DispatchQueue.concurrentPerform(iterations: count, execute: body) }
        }
    }

    /// `forEach` timed for `Profile`: the region's wall time, each part's busy time, and each
    /// part's CPU time on its thread (what it would take on a core of its own, however many
    /// threads share the cores now).
    @usableFromInline
    static func profiledForEach(_ count: Int, _ body: (Int) -> Void) {
        let busy = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * count)
        defer { busy.deallocate() }
        let cpu = busy + count
        let entered = Profile.enterParallelRegion()
        let start = DispatchTime.now().uptimeNanoseconds
        run(count) { i in
            let partStart = DispatchTime.now().uptimeNanoseconds, cpuStart = threadCPUNanoseconds()
            body(i)
            cpu[i] = threadCPUNanoseconds() &- cpuStart
            busy[i] = DispatchTime.now().uptimeNanoseconds - partStart
        }
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let busySeconds = (0..<count).reduce(0.0) { $0 + Double(busy[$1]) * 1e-9 }
        let cpuSeconds = (0..<count).reduce(0.0) { $0 + Double(cpu[$1]) * 1e-9 }
        let longest = Double((0..<count).map { cpu[$0] }.max() ?? 0) * 1e-9
        let threads = min(count, threadCount)
        Profile.recordParallelRegion(wall: wall, busy: busySeconds, threads: threads, narrow: count < threadCount,
                                     dedicated: max(longest, cpuSeconds / Double(threads)), entered: entered)
    }

    /// The calling thread's CPU time (user and system), in nanoseconds.
    @usableFromInline
    static func threadCPUNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// Splits `0..<count` into at most `threadCount` contiguous ranges of at least `minChunk`
    /// elements and calls `body` on each, concurrently.
    @inlinable
    public static func forRanges(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let parts = max(1, min(threadCount, count / max(minChunk, 1)))
        if parts == 1 { body(0..<count); return }
        forEach(parts) { part in body(chunk(part, of: parts, count: count)) }
    }

    /// The `part`-th of `parts` near-equal contiguous ranges of `0..<count`.
    @inlinable
    public static func chunk(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }
}

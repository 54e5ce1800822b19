import Foundation
import XCTest
import CThreadPool
@testable import Runtime

/// The worker pool behind `Parallel.forEach` (Sources/CThreadPool): every part runs exactly
/// once, loops follow each other without mixing, the pool follows `Parallel.threadCount`, loops
/// nested in a part or started from two threads at once still run, and the parts of one loop do
/// run at the same time.
final class ParallelPoolTests: XCTestCase {
    var savedThreads = 1

    override func setUp() { savedThreads = Parallel.threadCount }
    override func tearDown() { Parallel.threadCount = savedThreads }

    /// Counts how often each part ran.
    func runCounting(_ count: Int) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        let lock = NSLock()
        Parallel.forEach(count) { i in lock.lock(); hits[i] += 1; lock.unlock() }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    func testEveryPartRunsOnceOverManyLoopsAndPoolSizes() {
        for threads in [2, 3, 5, 1, 4] {
            Parallel.threadCount = threads
            for loop in 0..<2000 {
                let count = [2, 3, 7, 1, 64, 5][loop % 6]
                let hits = runCounting(count)
                if hits != [Int](repeating: 1, count: count) {
                    XCTFail("threads \(threads), loop \(loop): parts ran \(hits) times")
                    return
                }
            }
            // One thread runs the parts in turn and leaves the pool as it was.
            if threads > 1 { XCTAssertEqual(Int(tp_worker_count()), threads - 1) }
        }
    }

    /// Loops with no spinning (workers sleep at once) still run every part once.
    func testSleepingWorkersWakeForEveryLoop() {
        defer { tp_set_spin_ns(-1) }
        tp_set_spin_ns(0)
        Parallel.threadCount = 3
        for loop in 0..<500 {
            let hits = runCounting(4)
            if hits != [1, 1, 1, 1] { XCTFail("loop \(loop): parts ran \(hits) times"); return }
        }
    }

    /// A loop inside a part, and loops from two threads at once, go to Dispatch and complete.
    func testNestedAndConcurrentLoopsComplete() {
        Parallel.threadCount = 2
        let total = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        total.initialize(to: 0)
        defer { total.deallocate() }
        let lock = NSLock()
        Parallel.forEach(4) { _ in
            Parallel.forEach(3) { _ in lock.lock(); total.pointee += 1; lock.unlock() }
        }
        XCTAssertEqual(total.pointee, 12)

        final class Failures: @unchecked Sendable { var list = [String]() }
        let failures = Failures()
        let group = DispatchGroup()
        for caller in 0..<3 {
            group.enter()
            Thread.detachNewThread {
                for loop in 0..<300 {
                    let hits = self.runCounting(5)
                    if hits != [1, 1, 1, 1, 1] {
                        lock.lock(); failures.list.append("caller \(caller), loop \(loop): \(hits)"); lock.unlock()
                        break
                    }
                }
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success, "concurrent loops did not finish")
        XCTAssertEqual(failures.list, [])
    }

    /// Part 0 waits (at most 10 s) until part 1 has started: one thread running the parts in
    /// turn would time out here, not hang.
    func testPartsOfOneLoopRunConcurrently() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs two cores") }
        Parallel.threadCount = 2
        for _ in 0..<20 {
            let started = DispatchSemaphore(value: 0)
            var waited = DispatchTimeoutResult.success
            Parallel.forEach(2) { i in
                if i == 0 { waited = started.wait(timeout: .now() + 10) } else { started.signal() }
            }
            XCTAssertEqual(waited, .success, "part 1 never ran while part 0 waited")
        }
    }

    /// Workers spin only while the pool and the caller fit the CPUs: with more threads than
    /// CPUs a spinning worker would hold a CPU the caller needs.
    func testWorkersSpinOnlyWhenThePoolFitsTheCPUs() {
        tp_set_spin_ns(-1)
        Parallel.threadCount = 2
        Parallel.forEach(2) { _ in }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(tp_spin_ns(), cpus >= 2 ? 200_000 : 0)
        Parallel.threadCount = cpus + 3
        Parallel.forEach(cpus + 3) { _ in }
        XCTAssertEqual(tp_spin_ns(), 0)
        tp_set_spin_ns(5_000)
        XCTAssertEqual(tp_spin_ns(), 5_000)
        tp_set_spin_ns(-1)
    }
}

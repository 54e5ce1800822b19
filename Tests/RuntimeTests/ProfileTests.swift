import Foundation
import XCTest
@testable import Runtime

/// The step profiler (Profile.swift): spans count their time exclusive of nested spans, only
/// while profiling, only on the thread that started it; parallel regions report idle threads.
final class ProfileTests: XCTestCase {
    func spin(_ seconds: Double) {
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while DispatchTime.now().uptimeNanoseconds < end {}
    }

    /// The profile of `body` run with `Parallel.threadCount` at `threads`.
    func profile(threads: Int, _ body: () -> Void) -> Profile.Report {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = threads
        Profile.start()
        body()
        return Profile.stop()
    }

    func seconds(_ report: Profile.Report, _ op: Profile.Operation) -> Double {
        report.entries.first { $0.operation == op.name }!.seconds
    }

    func testNestedSpansAreExclusive() {
        Profile.start()
        let outer = Profile.begin(.conv3x3Forward)
        spin(0.02)
        let inner = Profile.begin(.allocation)
        spin(0.03)
        Profile.end(inner)
        Profile.end(outer)
        let report = Profile.stop()
        XCTAssertEqual(seconds(report, .allocation), 0.03, accuracy: 0.015)
        XCTAssertEqual(seconds(report, .conv3x3Forward), 0.02, accuracy: 0.015)
        XCTAssertEqual(report.entries.first { $0.operation == Profile.Operation.conv3x3Forward.name }?.calls, 1)
        XCTAssertEqual(report.entries.first { $0.operation == Profile.Operation.allocation.name }?.calls, 1)
    }

    /// A span inside one of its own class is part of it: one call, the whole time.
    func testASpanInsideItsOwnClassIsPartOfIt() {
        Profile.start()
        let outer = Profile.begin(.batchNormReLU)
        for _ in 0..<100 {
            let inner = Profile.begin(.batchNormReLU)
            Profile.end(inner)
        }
        spin(0.02)
        Profile.end(outer)
        let report = Profile.stop()
        let norm = report.entries.first { $0.operation == Profile.Operation.batchNormReLU.name }
        XCTAssertEqual(norm?.calls, 1)
        XCTAssertEqual(norm?.seconds ?? 0, 0.02, accuracy: 0.015)
    }

    func testNothingIsRecordedWhenOffOrOnOtherThreads() {
        let off = Profile.begin(.loss)
        Profile.end(off)
        Profile.start()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let span = Profile.begin(.loss)
            self.spin(0.01)
            Profile.end(span)
            done.signal()
        }
        done.wait()
        let report = Profile.stop()
        XCTAssertEqual(report.entries.map(\.calls).reduce(0, +), 0)
        XCTAssertEqual(report.parallelRegions, 0)
    }

    /// Two parts, one busy 40 ms and one 10 ms: on two or more cores the region lasts about
    /// 40 ms and a thread idles about 30 ms.
    func testParallelRegionsReportIdleThreads() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs two cores") }
        Profile.start()
        Parallel.forEach(2) { i in self.spin(i == 0 ? 0.04 : 0.01) }
        let report = Profile.stop()
        XCTAssertEqual(report.parallelRegions, 1)
        XCTAssertGreaterThanOrEqual(report.parallelSeconds, 0.04)
        XCTAssertGreaterThanOrEqual(report.idleThreadSeconds, 0.02)
    }

    /// A class's time inside parallel regions is parallel, outside them serial: a span that
    /// spins 30 ms alone and then runs a region of two 40 ms parts has about 30 ms serial and
    /// 40 ms parallel; a span opened by the recording thread inside one of the parts is parallel
    /// time of its own class, not of the region's.
    func testParallelAndSerialTimeAreCountedPerClass() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("needs two cores") }
        Profile.start()
        let outer = Profile.begin(.conv1x1Backward)
        spin(0.03)
        Parallel.forEach(2) { _ in
            // Recorded only where the recording thread runs the part (at least one of the two).
            let inner = Profile.begin(.batchNormReLU)
            self.spin(0.04)
            Profile.end(inner)
        }
        Profile.end(outer)
        spin(0.01)
        let report = Profile.stop()
        let conv = try XCTUnwrap(report.entries.first { $0.operation == Profile.Operation.conv1x1Backward.name })
        let norm = try XCTUnwrap(report.entries.first { $0.operation == Profile.Operation.batchNormReLU.name })
        XCTAssertGreaterThanOrEqual(norm.calls, 1)
        XCTAssertEqual(norm.seconds, 0.04 * Double(norm.calls), accuracy: 0.015)
        XCTAssertEqual(try XCTUnwrap(norm.parallelSeconds), norm.seconds, accuracy: 1e-9)
        XCTAssertEqual(norm.serialSeconds, 0, accuracy: 1e-9)
        XCTAssertEqual(conv.serialSeconds, 0.03, accuracy: 0.015)
        XCTAssertLessThan(try XCTUnwrap(conv.parallelSeconds), 0.02)
        XCTAssertEqual(report.parallelRegions, 1)
        XCTAssertEqual(try XCTUnwrap(report.unattributedParallelSeconds), 0)
        // The region and its waiting belong to the class of the span open around it.
        XCTAssertEqual(try XCTUnwrap(conv.idleThreadSeconds), report.idleThreadSeconds, accuracy: 1e-12)
    }

    /// A region with fewer parts than threads is narrow: counted per class whatever the cores.
    func testNarrowRegionsAreCountedPerClass() throws {
        let report = profile(threads: 3) {
            let pool = Profile.begin(.pooling)
            Parallel.forEach(2) { _ in }
            Parallel.forEach(3) { _ in }
            Parallel.forEach(7) { _ in }
            Profile.end(pool)
            let copy = Profile.begin(.concatCopy)
            Parallel.forEach(2) { _ in }
            Profile.end(copy)
        }
        func narrow(_ op: Profile.Operation) -> Int? { report.entries.first { $0.operation == op.name }?.narrowRegions }
        XCTAssertEqual(narrow(.pooling), 1)
        XCTAssertEqual(narrow(.concatCopy), 1)
        XCTAssertEqual(narrow(.loss), 0)
        XCTAssertEqual(report.parallelRegions, 4)
    }

    /// Spins until the calling thread has run `seconds` of CPU time, however long that takes on
    /// busy cores.
    func spinCPU(_ seconds: Double) {
        let end = Parallel.threadCPUNanoseconds() + UInt64(seconds * 1e9)
        while Parallel.threadCPUNanoseconds() < end {}
    }

    /// A region on dedicated cores lasts as long as its longest part's CPU time, or its parts'
    /// total over the threads: with 4 threads on however many cores (2 in CI), parts of 40 + 3×10
    /// ms of CPU are 40 ms, and 8 parts of 10 ms are 20 ms; the class adds its serial time.
    func testRegionsAreTimedAsOnDedicatedCores() throws {
        let report = profile(threads: 4) {
            let pool = Profile.begin(.pooling)
            spin(0.02)
            Parallel.forEach(4) { i in spinCPU(i == 0 ? 0.04 : 0.01) }
            Parallel.forEach(8) { _ in spinCPU(0.01) }
            Profile.end(pool)
        }
        let entry = try XCTUnwrap(report.entries.first { $0.operation == Profile.Operation.pooling.name })
        XCTAssertEqual(try XCTUnwrap(entry.dedicatedParallelSeconds), 0.06, accuracy: 0.01)
        XCTAssertEqual(try XCTUnwrap(entry.dedicatedSeconds), 0.08, accuracy: 0.015)
        XCTAssertEqual(try XCTUnwrap(report.dedicatedParallelSeconds), 0.06, accuracy: 0.01)
        XCTAssertEqual(report.unattributedDedicatedParallelSeconds ?? -1, 0, accuracy: 1e-9)
    }
}

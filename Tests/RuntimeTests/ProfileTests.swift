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
}

import BenchmarkSupport
import DenseNetModels
import Foundation
import XCTest

/// `ChildProcess.measure` with real child processes: `/bin/sh` scripts standing in for
/// bench-memory's `--child` mode, which print a record, fail, or die by a signal.
final class ChildProcessTests: XCTestCase {
    let configuration = BenchmarkConfiguration(model: "densenet-bc-40-12", strategy: .shared, batch: 8, input: "3x16x16",
                                               classes: 7, transitionPooling: .max, steps: 2, warmup: 0, threads: 1)
    var dir: ScratchDirectory!

    override func setUp() { dir = ScratchDirectory("child-process-tests") }
    override func tearDown() { dir.remove() }

    func recordLine() throws -> String {
        var record = BenchmarkRecord.measured(model: "densenet-bc-40-12", strategy: .shared, batch: 8)
        record.median_step_s = 0.125
        return String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
    }

    /// The child gets `--child <configuration as JSON>`; the record is its last line.
    func testTheRecordOnTheLastLineIsDecodedAndTheConfigurationPassed() throws {
        let child = try dir.script("child", """
        [ "$1" = "--child" ] || exit 9
        printf '%s' "$2" > '\(dir.file("configuration.json").path)'
        echo "progress that is not a record"
        echo 'warning: on standard error' >&2
        echo '\(try recordLine())'
        """)
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "ok", record.reason ?? "")
        XCTAssertEqual(record.strategy, "shared")
        XCTAssertEqual(record.median_step_s, 0.125)
        let passed = try JSONDecoder().decode(BenchmarkConfiguration.self,
                                              from: Data(contentsOf: dir.file("configuration.json")))
        XCTAssertEqual(passed, configuration)
        XCTAssertEqual(passed.transitionPooling, "max")
    }

    func testAnExitStatusBecomesAFailedRecordWithTheErrorOutput() throws {
        let child = try dir.script("child", """
        echo 'first line' >&2
        echo 'second line' >&2
        echo 'out of budget: model too large' >&2
        echo 'not a record'
        exit 3
        """)
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "failed")
        XCTAssertEqual(record.model, "densenet-bc-40-12")
        XCTAssertEqual(record.strategy, "shared")
        XCTAssertEqual(record.batch, 8)
        XCTAssertEqual(record.input, "3x16x16")
        let reason = try XCTUnwrap(record.reason)
        XCTAssertTrue(reason.contains("exited with status 3"), reason)
        // The last three lines of standard error.
        XCTAssertTrue(reason.contains("first line | second line | out of budget: model too large"), reason)
    }

    func testASilentChildThatPrintsNoRecordFails() throws {
        let child = try dir.script("child", "exit 0")
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "default")
        XCTAssertEqual(record.status, "failed")
        XCTAssertEqual(record.reason, "child exited with status 0: no output")
        XCTAssertEqual(record.input, "default")
    }

    func testAChildKilledBySegmentationFaultFails() throws {
        let child = try dir.script("child", """
        echo 'about to crash' >&2
        kill -SEGV $$
        echo '\(try recordLine())'
        """)
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "failed")
        let reason = try XCTUnwrap(record.reason)
        XCTAssertTrue(reason.contains("child died with signal \(SIGSEGV)"), reason)
        XCTAssertTrue(reason.contains("about to crash"), reason)
        XCTAssertFalse(reason.contains("out of memory"), reason)
    }

    /// SIGKILL is what the kernel's out-of-memory killer sends: the reason says so.
    func testAChildKilledBySIGKILLIsReportedAsPossiblyOutOfMemory() throws {
        let child = try dir.script("child", "kill -KILL $$")
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "failed")
        let reason = try XCTUnwrap(record.reason)
        XCTAssertTrue(reason.contains("signal 9 (SIGKILL: killed, out of memory?)"), reason)
    }

    func testAMissingExecutableFails() {
        let record = ChildProcess.measure(configuration, executable: dir.file("no-such-program"), inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "failed")
        XCTAssertTrue(record.reason?.contains("could not start") == true, record.reason ?? "")
    }

    /// A child that writes far more than a pipe holds (64 KiB) to standard error before its
    /// record: the parent drains both pipes, so neither side waits for the other.
    func testMuchErrorOutputBeforeTheRecordDoesNotBlock() throws {
        let child = try dir.script("child", """
        i=0
        while [ $i -lt 4000 ]; do
            echo "log line $i: padding padding padding padding padding padding padding padding padding" >&2
            i=$((i + 1))
        done
        echo '\(try recordLine())'
        """)
        let record = ChildProcess.measure(configuration, executable: child, inputLabel: "3x16x16")
        XCTAssertEqual(record.status, "ok", record.reason ?? "")
        XCTAssertEqual(record.median_step_s, 0.125)
    }
}

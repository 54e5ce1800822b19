import Foundation
import XCTest

/// Real Open MPI jobs: `mpirun --oversubscribe -np 2` of the `mpi-selftest` executable
/// (Benchmarks/mpi-selftest/main.swift), which `swift build` and `swift test` build next to this
/// test bundle. Every job runs under a deadline, so a hang fails the test instead of the suite.
final class MPIProcessTests: XCTestCase {
    func testCollectivesAndBucketsBetweenTwoRanks() throws {
        let run = try MPIJob.run(["-np", "2", MPIJob.selftest().path, "collectives"], timeout: 120)
        XCTAssertFalse(run.timedOut, run.output)
        XCTAssertEqual(run.status, 0, run.output)
        for rank in 0..<2 {
            XCTAssertTrue(run.output.contains("rank \(rank) of 2: 71 checks passed, 0 failed"), run.output)
        }
    }

    func testWithoutMpirunTheSelftestIsOneRank() throws {
        let run = try MPIJob.run(executable: MPIJob.selftest(), ["collectives"], timeout: 60)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("rank 0 of 1: 71 checks passed, 0 failed"), run.output)
    }

    func testAKilledRankEndsTheJobWithAMessage() throws {
        let run = try MPIJob.run(["-np", "2", MPIJob.selftest().path, "kill-rank", "1"], timeout: 90)
        run.assertFailedPromptly(saying: ["rank 0: entering the all-reduce", "exited on signal 9"])
    }

    func testARankExitingWithAnErrorEndsTheJobWithAMessage() throws {
        let run = try MPIJob.run(["-np", "2", MPIJob.selftest().path, "exit-rank", "1"], timeout: 90)
        run.assertFailedPromptly(saying: ["rank 1: exiting with status 3 on purpose", "exited with non-zero status"])
    }

    /// Scripts/two_namespaces.sh: one rank in each of two network namespaces, over TCP on a
    /// veth pair. Skipped (with the script's reason) where namespaces cannot be made.
    func testTwoRanksInTwoNetworkNamespaces() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Scripts/two_namespaces.sh")
        let run = try MPIJob.run(executable: script, [MPIJob.selftest().path, "collectives"], timeout: 120)
        if run.status == 77 { throw XCTSkip(run.output) }
        XCTAssertFalse(run.timedOut, run.output)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("rank 0 of 2: host node-a"), run.output)
        XCTAssertTrue(run.output.contains("rank 1 of 2: host node-b"), run.output)
        for rank in 0..<2 {
            XCTAssertTrue(run.output.contains("rank \(rank) of 2: 71 checks passed, 0 failed"), run.output)
        }
    }
}

/// Starting `mpirun` and the self-test, with a deadline.
enum MPIJob {
    struct Result {
        var status: Int32
        var timedOut: Bool
        var seconds: Double
        var output: String

        /// The job failed as a whole within a minute, its output holding every one of `messages`:
        /// what a rank that dies must do to the job.
        func assertFailedPromptly(saying messages: [String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertFalse(timedOut, "the job outlived its deadline: \(output)", file: file, line: line)
            XCTAssertNotEqual(status, 0, output, file: file, line: line)
            for message in messages { XCTAssertTrue(output.contains(message), output, file: file, line: line) }
            XCTAssertLessThan(seconds, 60, output, file: file, line: line)
        }
    }

    /// The `mpi-selftest` executable in this test bundle's build products folder.
    static func selftest() throws -> URL { try product("mpi-selftest") }

    /// An executable of this package in this test bundle's build products folder.
    static func product(_ name: String) throws -> URL {
        let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let url = products.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw MPIJobError("\(url.path) is missing: build it with `swift build --product \(name)`"
                              + " (a plain `swift build` or `swift test` builds it too)")
        }
        return url
    }

    /// The processes whose parent is `pid` (from /proc), in ascending id order.
    static func children(of pid: Int32) -> [Int32] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        return ids.filter { id in
            guard let stat = try? String(contentsOfFile: "/proc/\(id)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // Fields after "(comm)": state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }.sorted()
    }

    /// `mpirun` from PATH.
    static func mpirun() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw MPIJobError("mpirun not found on PATH; run Scripts/setup.sh (it installs openmpi-bin)")
    }

    /// `mpirun --oversubscribe <arguments>`, allowed to run as root (CI does).
    /// `during`, if given, runs on another thread with mpirun's process id once it has started;
    /// what it returns is added to the output.
    static func run(_ arguments: [String], timeout: Double, during: ((Int32) -> String)? = nil) throws -> Result {
        try run(executable: mpirun(), ["--oversubscribe"] + arguments, timeout: timeout, during: during)
    }

    /// Runs `executable` with standard output and error to one temporary file; past `timeout`
    /// seconds sends SIGTERM (mpirun then ends its ranks), and SIGKILL 10 s later.
    static func run(executable: URL, _ arguments: [String], timeout: Double,
                    during: ((Int32) -> String)? = nil) throws -> Result {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-job-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        // Containers often forbid the cross-process memory reads (CMA) that Open MPI's shared
        // memory transport uses for large messages; copying through the shared segment works
        // everywhere. A value set by the caller wins.
        if environment["OMPI_MCA_btl_vader_single_copy_mechanism"] == nil {
            environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        }
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        let started = Date()
        try process.run()
        let note = NoteBox()
        let group = DispatchGroup()
        if let during {
            let pid = process.processIdentifier
            DispatchQueue.global().async(group: group) { note.text = during(pid) }
        }
        var timedOut = false
        while process.isRunning {
            let elapsed = Date().timeIntervalSince(started)
            if elapsed > timeout + 10 { kill(process.processIdentifier, SIGKILL) }
            else if elapsed > timeout && !timedOut { timedOut = true; process.terminate() }
            usleep(50_000)
        }
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(started)
        group.wait()
        let output = ((try? String(contentsOf: log, encoding: .utf8)) ?? "") + (note.text.map { "\n[test] \($0)\n" } ?? "")
        return Result(status: process.terminationStatus, timedOut: timedOut, seconds: seconds,
                      output: "\(executable.lastPathComponent) \(arguments.joined(separator: " ")):\n\(output)")
    }
}

private final class NoteBox: @unchecked Sendable { var text: String? }

struct MPIJobError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

import Foundation
import XCTest

/// The command lines of the hostile suite, run as real processes: the `densenet` and
/// `bench-memory` executables next to this test bundle in the build products folder (as
/// Tests/DataParallelTests/MPIProcessTests.swift finds `mpi-selftest`; `swift build` and
/// `swift test` build them).
enum HostileCommand {
    struct Result {
        var status: Int32
        var signalled: Bool
        var timedOut: Bool
        var seconds: Double
        var output: String
    }

    static func executable(_ name: String) throws -> URL {
        let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let url = products.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw XCTSkip("\(url.path) is missing: build it with `swift build` (swift test builds it too)")
        }
        return url
    }

    /// Runs `name arguments` in `directory`, standard output and error to one file; killed past
    /// `timeout` seconds (a hang, reported as such).
    static func run(_ name: String, _ arguments: [String], in directory: String? = nil, timeout: Double = 20) throws -> Result {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-cli-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = try executable(name)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = handle
        process.standardError = handle
        let started = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(started) > timeout { timedOut = true; kill(process.processIdentifier, SIGKILL); break }
            usleep(10_000)
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                      timedOut: timedOut, seconds: Date().timeIntervalSince(started),
                      output: (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}

/// A command line that exited non-zero; its output is the message `refuses` checks.
struct CommandRefusal: Error, CustomStringConvertible {
    var description: String
}

/// One hostile case of a command line, counted as `refuses` counts the others: the process
/// must exit with a non-zero status (not a signal: a crash; not past `timeout`: a hang) within
/// `within` seconds, its output naming `words`.
@discardableResult
func refusesCommand(_ name: String, _ arguments: [String], mentioning words: [String], in directory: String? = nil,
                    within seconds: Double = 10, file: StaticString = #filePath, line: UInt = #line) -> String {
    var output = ""
    refuses("\(name) \(arguments.joined(separator: " "))", mentioning: words, file: file, line: line) {
        let result = try HostileCommand.run(name, arguments, in: directory, timeout: max(seconds * 2, 20))
        output = result.output
        XCTAssertFalse(result.timedOut, "\(name) \(arguments): a hang", file: file, line: line)
        XCTAssertFalse(result.signalled, "\(name) \(arguments): crashed with signal \(result.status): \(result.output)",
                       file: file, line: line)
        XCTAssertFalse(result.output.contains("NSCocoaErrorDomain"), "a raw Foundation error: \(result.output)",
                       file: file, line: line)
        XCTAssertLessThan(result.seconds, seconds, "\(name) \(arguments): refused only after \(result.seconds) s",
                          file: file, line: line)
        if result.status != 0 { throw CommandRefusal(description: result.output) }
    }
    return output
}

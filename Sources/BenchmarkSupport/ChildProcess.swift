import Foundation

/// Runs one configuration in a fresh child process (this same executable, re-invoked with
/// `--child`), so that its peak RSS (VmHWM) is its own and not what an earlier configuration
/// left behind.
public enum ChildProcess {
    /// The running executable.
    public static var currentExecutable: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }

    /// Runs `executable --child <configuration as JSON>` and decodes the record it prints as its
    /// last line. A crash, a kill (out of memory) or bad output becomes a failed record. A
    /// configuration over several ranks runs as `mpirun --oversubscribe -np N executable --child ...`
    /// (Open MPI's mpirun from PATH; as root it needs OMPI_ALLOW_RUN_AS_ROOT=1 and
    /// OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment, which the child inherits).
    public static func measure(_ c: BenchmarkConfiguration, executable: URL = currentExecutable,
                               inputLabel: String) -> BenchmarkRecord {
        let process = Process()
        process.executableURL = executable
        guard let json = try? JSONEncoder().encode(c), let argument = String(data: json, encoding: .utf8) else {
            return .failed(c, input: inputLabel, reason: "could not encode the configuration")
        }
        process.arguments = ["--child", argument]
        if c.rankCount > 1 {
            guard let mpirun = mpirun() else {
                return .failed(c, input: inputLabel, reason: "mpirun not found on PATH; run Scripts/setup.sh (it installs openmpi-bin)")
            }
            process.executableURL = mpirun
            process.arguments = ["--oversubscribe", "-np", "\(c.rankCount)", executable.path, "--child", argument]
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            return .failed(c, input: inputLabel, reason: "could not start \(executable.path): \(error)")
        }
        // Both pipes are drained at once: a child that fills one (64 KiB) while the parent
        // waits on the other would otherwise block for ever.
        let errorOutput = DrainedPipe(err)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = errorOutput.wait()
        process.waitUntilExit()
        let stderrTail = String(decoding: errData, as: UTF8.self)
            .split(separator: "\n").suffix(3).joined(separator: " | ")
        if process.terminationReason == .uncaughtSignal {
            let signal = process.terminationStatus
            let hint: String
            switch signal {
            case SIGKILL: hint = " (SIGKILL: killed, out of memory?)"
            case SIGILL, SIGTRAP: hint = " (a Swift runtime trap: a failed allocation or a failed check)"
            case SIGSEGV: hint = " (SIGSEGV: a segmentation fault, or a stack overflow)"
            default: hint = ""
            }
            // Swift's crash report: its "Fatal error" line says why; the backtrace does not.
            let text = String(decoding: errData, as: UTF8.self).split(separator: "\n")
            let fatal = text.first(where: { $0.contains("Fatal error") || $0.contains("fatal error") }).map(String.init)
            let why = (fatal ?? stderrTail).isEmpty ? "" : " — " + (fatal ?? stderrTail)
            return .failed(c, input: inputLabel, reason: "child died with signal \(signal)\(hint)\(why)")
        }
        let lastLine = String(decoding: outData, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        if let record = try? JSONDecoder().decode(BenchmarkRecord.self, from: Data(lastLine.utf8)) {
            return record
        }
        return .failed(c, input: inputLabel,
                       reason: "child exited with status \(process.terminationStatus): \(stderrTail.isEmpty ? "no output" : stderrTail)")
    }
}

extension ChildProcess {
    /// `mpirun` from PATH, if any.
    static func mpirun() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}

/// Reads a pipe to its end on a thread of its own; `wait()` returns what it read.
final class DrainedPipe: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

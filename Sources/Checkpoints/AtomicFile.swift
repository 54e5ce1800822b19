import Foundation

/// Replacing a file so that a crash or error at any point leaves either the old file or the
/// complete new one: write a temporary file in the same directory (same file system, so the
/// rename is atomic), fsync it, rename it over the target, fsync the directory.
public enum AtomicFile {
    /// Creates the temporary file, lets `body` write it through its descriptor, and on success
    /// moves it to `path`. If anything throws, the temporary file is removed and `path` is
    /// untouched; errors become `CheckpointError.writeFailed` (a `CheckpointError` from `body`
    /// passes through unchanged).
    public static func write(to path: String, _ body: (FileDescriptorWriter) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = (directory as NSString).appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError.writeFailed(path: path, reason: "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        var isOpen = true
        do {
            try body(FileDescriptorWriter(fd: fd, path: path))
            guard fsync(fd) == 0 else { throw failure(path, "fsync") }
            isOpen = false
            guard close(fd) == 0 else { throw failure(path, "close") }
            guard rename(temporary, path) == 0 else { throw failure(path, "rename to the target") }
        } catch {
            if isOpen { close(fd) }
            unlink(temporary)
            if error is CheckpointError { throw error }
            throw CheckpointError.writeFailed(path: path, reason: "\(error)")
        }
        // Make the rename itself durable. Failure here cannot undo it, so it is not an error.
        syncDirectory(directory)
    }

    /// fsyncs a directory, making renames and creations in it durable (best effort: a failure
    /// cannot undo them).
    public static func syncDirectory(_ directory: String) {
        let dirfd = Foundation.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    static func failure(_ path: String, _ what: String) -> CheckpointError {
        CheckpointError.writeFailed(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
}

/// Writes whole buffers to a descriptor, retrying partial writes and EINTR.
public struct FileDescriptorWriter {
    let fd: Int32
    let path: String

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Foundation.write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw AtomicFile.failure(path, "write")
            }
            p += n
            left -= n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

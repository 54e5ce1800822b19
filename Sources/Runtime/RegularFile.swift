import Foundation

/// Opening files named by users or found in run folders without ever blocking: `open(2)` of a
/// named pipe for reading waits for a writer (forever, when there is none), and a character
/// device such as /dev/zero never ends. `RegularFile.open` opens with `O_NONBLOCK` (which makes
/// a FIFO's open return at once) and keeps the descriptor only when `fstat` says it is a
/// regular file; the check is on the opened descriptor, so the file cannot be swapped between
/// check and use.
public enum RegularFile {
    /// What a path is, in words, for messages ("a named pipe (FIFO)", "a directory", ...).
    public static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// Why a path could not be opened as a regular file.
    public enum Failure: Error, Equatable {
        /// `open` or `fstat` failed with `errno` (ENOENT, ENOTDIR: no such file).
        case system(errno: Int32, reason: String)
        /// It exists but is `kind` (a directory, a named pipe, a device).
        case notRegular(kind: String)
    }

    /// A descriptor (blocking mode, close-on-exec) and the size of the regular file at `path`
    /// (symbolic links followed).
    public static func open(_ path: String) -> Result<(fd: Int32, size: Int), Failure> {
        let fd = Foundation.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            return .failure(.system(errno: code, reason: String(cString: strerror(code))))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            return .failure(.system(errno: code, reason: String(cString: strerror(code))))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(.notRegular(kind: kindName(info.st_mode)))
        }
        // Regular files ignore O_NONBLOCK; cleared anyway so reads behave as documented.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return .success((fd, Int(info.st_size)))
    }

    /// What is at `path` (symbolic links followed), without opening it: nil when nothing is.
    public static func kind(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }
}

import CZlib
import Foundation
import Runtime

/// How many bytes a reader accepts from one file, after decompression: at most `maximum`,
/// and, for a format with a header (IDX), no more than the size its first `headerBytes`
/// announce. `FileBytes.read` inflates gzip within it, so a small file that inflates to
/// gigabytes is refused as soon as it passes the limit, not after it has been inflated.
public struct SizeLimit: Sendable {
    public var maximum: Int
    /// Decompressed bytes `announcedSize` needs (0: no header).
    public var headerBytes: Int
    /// The whole size the header announces (throws for a header that is wrong on its own).
    public var announcedSize: (@Sendable ([UInt8]) throws -> Int)?

    public init(maximum: Int, headerBytes: Int = 0, announcedSize: (@Sendable ([UInt8]) throws -> Int)? = nil) {
        precondition(maximum >= 0 && headerBytes >= 0, "SizeLimit: negative maximum \(maximum) or header \(headerBytes)")
        self.maximum = maximum
        self.headerBytes = headerBytes
        self.announcedSize = announcedSize
    }

    /// At most `bytes`, no header.
    public static func atMost(_ bytes: Int) -> SizeLimit { SizeLimit(maximum: bytes) }

    /// Half of this machine's physical memory: the bound of a file with no better one.
    public static var physicalMemoryShare: SizeLimit { .atMost(CheckedSize.physicalMemoryBytes / 2) }
}

/// Reading a whole dataset file into memory, inflating it when it is gzip'd.
public enum FileBytes {
    /// What to tell someone whose dataset file is missing.
    public static let defaultMissingHint =
        "Check the path; for Fashion-MNIST, `Scripts/setup.sh --data` installs Debian's"
        + " dataset-fashion-mnist into /usr/share/datasets/fashion-mnist/."

    /// The file's bytes, inflated when it is gzip'd: the first two bytes are gzip's magic
    /// (1f 8b), or the name ends in ".gz" (then it must be gzip). Concatenated gzip members are
    /// read one after another, like `gunzip`; anything else after the last member is an error.
    /// A file, or its inflated data, larger than `limit` allows is refused
    /// (`DatasetError.tooLarge`) without reading or inflating more than one byte past it.
    public static func read(_ path: String, missingHint: String = defaultMissingHint,
                            limit: SizeLimit = .physicalMemoryShare) throws -> [UInt8] {
        let raw = try readRaw(path, missingHint: missingHint, maximum: limit.maximum)
        let looksGzip = raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b
        if looksGzip { return try gunzip(raw, path: path, limit: limit) }
        if path.hasSuffix(".gz") {
            let head = raw.prefix(2).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw DatasetError.corruptGzip(path: path, reason: "named .gz but does not start with gzip's"
                                           + " magic 1f 8b (starts with \(head.isEmpty ? "nothing: empty file" : head))")
        }
        return raw
    }

    /// The file's bytes as stored, via POSIX `read` (errno becomes the error's reason). Anything
    /// but a regular file (a directory, a named pipe, a device) is refused before it is read,
    /// without blocking (`RegularFile.open`).
    /// A file larger than `maximum` bytes is refused before anything is read.
    public static func readRaw(_ path: String, missingHint: String = defaultMissingHint,
                               maximum: Int = SizeLimit.physicalMemoryShare.maximum) throws -> [UInt8] {
        let fd: Int32, size: Int
        switch RegularFile.open(path) {
        case .success(let file): (fd, size) = file
        case .failure(.system(let code, _)) where code == ENOENT || code == ENOTDIR:
            throw DatasetError.missingFile(path: path, hint: missingHint)
        case .failure(.system(_, let reason)): throw DatasetError.unreadable(path: path, reason: reason)
        case .failure(.notRegular(let kind)): throw DatasetError.notRegularFile(path: path, kind: kind)
        }
        defer { close(fd) }
        guard size <= maximum else {
            throw DatasetError.tooLarge(path: path, bytes: size, limit: maximum, reason: "the file itself")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: Int32 = 0
        bytes.withUnsafeMutableBytes { buffer in
            while done < size {
                let n = Foundation.read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 { if errno == EINTR { continue }; failure = errno; return }
                if n == 0 { break } // the file shrank while we read it
                done += n
            }
        }
        if failure != 0 { throw DatasetError.unreadable(path: path, reason: String(cString: strerror(failure))) }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Inflates gzip data (zlib's `inflate` with windowBits 15+32, which accepts gzip and zlib
    /// headers and checks the CRC and length trailer), never producing more than one byte past
    /// `limit`: its maximum, or, once the first `headerBytes` are out, the size they announce.
    public static func gunzip(_ compressed: [UInt8], path: String,
                              limit: SizeLimit = .physicalMemoryShare) throws -> [UInt8] {
        var allowed = limit.maximum
        var reason = "the reader's limit for this kind of file"
        var headerChecked = limit.announcedSize == nil
        // The gzip trailer's ISIZE is the uncompressed size mod 2^32: exact for these files,
        // only a starting capacity otherwise, and never more than allowed.
        var capacity = 1 << 16
        if compressed.count >= 18 {
            let n = compressed.count
            let isize = Int(compressed[n - 4]) | Int(compressed[n - 3]) << 8 | Int(compressed[n - 2]) << 16
                | Int(compressed[n - 1]) << 24
            // Deflate expands at most ~1032:1, so a damaged trailer cannot ask for more than that.
            capacity = max(capacity, min(isize, compressed.count * 1032))
        }
        capacity = min(capacity, allowed + 1)
        if !headerChecked { capacity = max(min(capacity, 1 << 16), limit.headerBytes) }
        var out = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError.corruptGzip(path: path, reason: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }

        var consumed = 0
        var finished = false
        func checkLimit() throws {
            if !headerChecked && produced >= limit.headerBytes, let announced = limit.announcedSize {
                let size = try announced(Array(out[0..<limit.headerBytes]))
                if size < allowed {
                    allowed = size
                    reason = "the size its header announces"
                }
                headerChecked = true
            }
            if produced > allowed {
                throw DatasetError.tooLarge(path: path, bytes: produced, limit: allowed, reason: reason)
            }
        }
        while !finished {
            try checkLimit()
            if produced == out.count {
                let target = min(out.count + max(out.count, 1 << 16), allowed + 1)
                out.append(contentsOf: repeatElement(0, count: max(target - out.count, 1)))
            }
            var status: Int32 = Z_OK
            compressed.withUnsafeBufferPointer { input in
                out.withUnsafeMutableBufferPointer { output in
                    let inChunk = min(input.count - consumed, Int(UInt32.max))
                    let outChunk = min(output.count - produced, Int(UInt32.max))
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + consumed)
                    stream.avail_in = UInt32(inChunk)
                    stream.next_out = output.baseAddress! + produced
                    stream.avail_out = UInt32(outChunk)
                    status = inflate(&stream, Z_NO_FLUSH)
                    consumed += inChunk - Int(stream.avail_in)
                    produced += outChunk - Int(stream.avail_out)
                }
            }
            switch status {
            case Z_STREAM_END:
                let rest = compressed.count - consumed
                if rest == 0 {
                    finished = true
                } else if rest >= 2 && compressed[consumed] == 0x1f && compressed[consumed + 1] == 0x8b {
                    inflateReset(&stream) // another gzip member follows
                } else {
                    throw DatasetError.corruptGzip(path: path, reason: "\(rest) bytes of non-gzip data after"
                                                   + " the compressed stream")
                }
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: output is full (grown above) or input ran out.
                if consumed == compressed.count {
                    throw DatasetError.corruptGzip(path: path, reason: "the compressed stream ends early"
                                                   + " (after \(produced) uncompressed bytes)")
                }
                if produced < out.count {
                    throw DatasetError.corruptGzip(path: path, reason: "zlib makes no progress at byte \(consumed)")
                }
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                throw DatasetError.corruptGzip(path: path, reason: message)
            }
        }
        try checkLimit()
        out.removeLast(out.count - produced)
        return out
    }

    /// Compresses `bytes` as one gzip member (zlib's `deflate`, windowBits 15+16), for writing
    /// test files and caches.
    public static func gzip(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let initStatus = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                       zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(initStatus == Z_OK, "FileBytes.gzip: deflateInit2 failed with status \(initStatus)")
        defer { deflateEnd(&stream) }
        precondition(bytes.count < Int(UInt32.max), "FileBytes.gzip: \(bytes.count) bytes is too large")
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
        var status: Int32 = Z_OK
        bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress ?? UnsafePointer(output.baseAddress!))
                stream.avail_in = UInt32(input.count)
                stream.next_out = output.baseAddress!
                stream.avail_out = UInt32(output.count)
                status = deflate(&stream, Z_FINISH)
            }
        }
        precondition(status == Z_STREAM_END, "FileBytes.gzip: deflate returned \(status)")
        out.removeLast(out.count - Int(stream.total_out))
        return out
    }
}

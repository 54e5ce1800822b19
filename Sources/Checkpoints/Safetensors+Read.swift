import Foundation
import Runtime

extension Safetensors {
    /// Reads and validates the header of the file at `path` without reading tensor data.
    public static func readHeader(_ path: String) throws -> Header {
        let file = try ReadFile(path)
        defer { file.close() }
        return try file.header()
    }

    /// Reads every tensor (contiguous, row-major in the file's shapes, category `category`) and
    /// the metadata. Nothing is allocated before the whole header has been validated.
    public static func read(_ path: String, category: MemoryCategory = .parameters) throws -> Contents {
        let file = try ReadFile(path)
        defer { file.close() }
        let header = try file.header()
        var tensors: [String: Tensor] = [:]
        for entry in header.entries {
            let t = Tensor(shape: entry.shape, category: category)
            try file.readFloats(entry, header: header, into: t.pointer)
            tensors[entry.name] = t
        }
        return Contents(tensors: tensors, metadata: header.metadata)
    }

    /// Strict loading, like PyTorch's `load_state_dict(strict=True)`: the file must hold exactly
    /// the tensors of `expected`, with exactly those shapes, or the error lists every missing,
    /// unexpected and mis-shaped tensor (checked before any data is read).
    public static func load(_ path: String, expecting expected: [String: [Int]],
                            category: MemoryCategory = .parameters) throws -> Contents {
        try checkShapes(readHeader(path), expected: expected, path: path)
        return try read(path, category: category)
    }

    /// Strict loading into existing tensors (e.g. a model's parameters), which keep their
    /// storage; returns the file's metadata.
    @discardableResult
    public static func load(_ path: String, into targets: [String: Tensor]) throws -> [String: String] {
        let file = try ReadFile(path)
        defer { file.close() }
        let header = try file.header()
        try checkShapes(header, expected: targets.mapValues(\.shape), path: path)
        for entry in header.entries {
            let target = targets[entry.name]!
            if target.isContiguous {
                try target.withPointer { try file.readFloats(entry, header: header, into: $0) }
            } else {
                let staging = Tensor(shape: entry.shape, category: .scratch)
                try file.readFloats(entry, header: header, into: staging.pointer)
                target.assign(staging)
            }
        }
        return header.metadata
    }

    static func checkShapes(_ header: Header, expected: [String: [Int]], path: String) throws {
        let found = header.shapes
        let missing = expected.keys.filter { found[$0] == nil }.sorted()
        let unexpected = found.keys.filter { expected[$0] == nil }.sorted()
        let mismatched = expected.keys.sorted().compactMap { name -> CheckpointError.ShapeMismatch? in
            guard let f = found[name], let e = expected[name], f != e else { return nil }
            return CheckpointError.ShapeMismatch(name: name, expected: e, found: f)
        }
        if !missing.isEmpty || !unexpected.isEmpty || !mismatched.isEmpty {
            throw CheckpointError.stateMismatch(path: path, missing: missing, unexpected: unexpected, mismatched: mismatched)
        }
    }
}

/// An open regular file (a named pipe or device is refused without blocking: `RegularFile.open`)
/// read with `pread` at explicit offsets: every read is bounded by sizes that
/// were checked against `fstat`, and a short read (the file shrank) is an error, never a crash.
struct ReadFile {
    let path: String
    let fd: Int32
    let size: Int

    init(_ path: String) throws {
        self.path = path
        switch RegularFile.open(path) {
        case .success(let file): (fd, size) = file
        case .failure(.system(let code, _)) where code == ENOENT || code == ENOTDIR:
            throw CheckpointError.missingFile(path: path)
        case .failure(.system(_, let reason)): throw CheckpointError.io(path: path, reason: reason)
        case .failure(.notRegular(let kind)): throw CheckpointError.notRegularFile(path: path, kind: kind)
        }
    }

    func close() { Foundation.close(fd) }

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointError.io(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { throw CheckpointError.io(path: path, reason: "the file ended early (was it changed while being read?)") }
            done += n
        }
    }

    func header() throws -> Safetensors.Header {
        guard size >= 8 else { throw CheckpointError.fileTooShort(path: path, size: size) }
        var lengthBytes: UInt64 = 0
        try read(into: &lengthBytes, count: 8, at: 0)
        let length = UInt64(littleEndian: lengthBytes)
        guard length <= UInt64(size - 8), length <= UInt64(Safetensors.maxHeaderLength) else {
            throw CheckpointError.headerTooLarge(path: path, headerLength: length, fileSize: size)
        }
        var json = [UInt8](repeating: 0, count: Int(length))
        if length > 0 { try json.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: Int(length), at: 8) } }
        var header = try Safetensors.parseHeader(json, dataSize: size - 8 - Int(length), path: path)
        header.dataStart = 8 + Int(length)
        header.fileSize = size
        return header
    }

    /// Reads `entry`'s F32 values (little-endian in the file) into `dst`.
    func readFloats(_ entry: Safetensors.Entry, header: Safetensors.Header, into dst: UnsafeMutablePointer<Float>) throws {
        let bytes = entry.end - entry.begin
        precondition(bytes == entry.elementCount * 4 && header.dataStart + entry.end <= size,
                     "ReadFile.readFloats: unvalidated entry \(entry)")
        try read(into: dst, count: bytes, at: header.dataStart + entry.begin)
        #if _endian(big)
        for i in 0..<entry.elementCount { dst[i] = Float(bitPattern: UInt32(littleEndian: dst[i].bitPattern)) }
        #endif
    }
}

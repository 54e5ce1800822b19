import Foundation
import Runtime

/// A tensor to write: its name, its shape, and where its values come from, in row-major order
/// of `shape` (PyTorch's layout for that shape).
public struct TensorSource {
    public enum Values {
        case tensor(Tensor)
        /// Fills a buffer of `shape`'s element count; may throw to abort the write.
        case producer((UnsafeMutableBufferPointer<Float>) throws -> Void)
    }
    public let name: String
    public let shape: [Int]
    public let values: Values

    public init(name: String, tensor: Tensor) {
        self.name = name
        self.shape = tensor.shape
        self.values = .tensor(tensor)
    }

    public init(name: String, shape: [Int], fill: @escaping (UnsafeMutableBufferPointer<Float>) throws -> Void) {
        precondition(shape.allSatisfy { $0 >= 0 }, "TensorSource: negative dimension in \(shape) for '\(name)'")
        self.name = name
        self.shape = shape
        self.values = .producer(fill)
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

extension Safetensors {
    /// Writes F32 `tensors` and `metadata` to `path` atomically (see `AtomicFile`).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        try write(tensors.map { TensorSource(name: $0.key, tensor: $0.value) }, metadata: metadata, to: path)
    }

    /// Writes the sources, sorted by name, atomically: if a source throws or a write fails, the
    /// previous file at `path` is left as it was. Values are streamed one tensor at a time
    /// (contiguous tensors straight from their storage; others and producers through a
    /// counted scratch buffer).
    public static func write(_ sources: [TensorSource], metadata: [String: String] = [:], to path: String) throws {
        let sorted = sources.sorted { $0.name < $1.name }
        var seen = Set<String>()
        for s in sorted {
            if s.name.isEmpty { throw CheckpointError.invalidName(path: path, name: s.name, reason: "empty name") }
            if s.name == "__metadata__" {
                throw CheckpointError.invalidName(path: path, name: s.name, reason: "reserved for the metadata")
            }
            if !seen.insert(s.name).inserted {
                throw CheckpointError.invalidName(path: path, name: s.name, reason: "two tensors have this name")
            }
        }
        let header = encodeHeader(sorted.map { ($0.name, $0.shape) }, metadata: metadata)
        try AtomicFile.write(to: path) { out in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.write($0) }
            try out.write(header)
            for source in sorted {
                try writeValues(source, to: out)
            }
        }
    }

    /// The header bytes (padded with spaces to a multiple of 8) for tensors written in the
    /// given order, back to back: compact JSON with `__metadata__` first (sorted keys, omitted
    /// when empty), then each tensor's dtype, shape and data_offsets, as the reference
    /// implementation writes them.
    public static func encodeHeader(_ tensors: [(name: String, shape: [Int])], metadata: [String: String]) -> [UInt8] {
        var parts = [String]()
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(JSONValue.quoted($0)):\(JSONValue.quoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for (name, shape) in tensors {
            let bytes = shape.reduce(1, *) * 4
            let dims = shape.map(String.init).joined(separator: ",")
            parts.append("\(JSONValue.quoted(name)):{\"dtype\":\"F32\",\"shape\":[\(dims)],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var json = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        return json
    }

    static func writeValues(_ source: TensorSource, to out: FileDescriptorWriter) throws {
        let count = source.elementCount
        func emit(_ p: UnsafePointer<Float>) throws {
            #if _endian(big)
            let swapped = Tensor(shape: [count], category: .scratch)
            for i in 0..<count { swapped.pointer[i] = Float(bitPattern: p[i].bitPattern.littleEndian) }
            try out.write(UnsafeRawBufferPointer(start: swapped.pointer, count: count * 4))
            #else
            try out.write(UnsafeRawBufferPointer(start: p, count: count * 4))
            #endif
        }
        switch source.values {
        case .tensor(let t) where t.isContiguous:
            try t.withPointer { try emit($0) }
        case .tensor(let t):
            let staging = t.copy(category: .scratch)
            try staging.withPointer { try emit($0) }
        case .producer(let fill):
            let staging = Tensor(shape: [count], category: .scratch)
            try staging.withPointer { p in
                try fill(UnsafeMutableBufferPointer(start: p, count: count))
                try emit(p)
            }
        }
    }
}

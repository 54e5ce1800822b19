import Foundation
import Runtime

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length N, N bytes of JSON header `{name: {"dtype", "shape", "data_offsets": [begin,
/// end]}, "__metadata__": {string: string}}` (padded with spaces to a multiple of 8), then the
/// data buffer; offsets are relative to its start, tensors are little-endian and row-major in
/// their shape. This module writes and reads F32 only, and validates every byte of a file it
/// reads before trusting it.
public enum Safetensors {
    /// The largest header accepted (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000
    /// The dtypes of the format, for telling "unknown" from "not supported here".
    public static let knownDtypes: Set<String> = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                                                  "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]

    /// One tensor's entry in a header.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        /// Byte range in the data buffer.
        public var begin: Int
        public var end: Int
        /// "F32", or "I64" for a PyTorch batch-norm `num_batches_tracked` counter (skipped on load).
        public var dtype: String = "F32"
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// A validated header: entries in data-buffer order, metadata, and where the data starts.
    public struct Header: Sendable, Equatable {
        public var entries: [Entry]
        public var metadata: [String: String]
        /// File offset of the data buffer: 8 + header length.
        public var dataStart: Int
        public var fileSize: Int
        /// PyTorch's int64 `*.num_batches_tracked` scalars: checked like every entry, then left
        /// out of `entries`, since they hold no weights (a torchvision `state_dict` has them).
        public var skipped: [String] = []

        /// Names to shapes, for comparison with a model's expectation.
        public var shapes: [String: [Int]] {
            Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.shape) })
        }
    }

    /// A loaded file.
    public struct Contents: @unchecked Sendable {
        public var tensors: [String: Tensor]
        public var metadata: [String: String]
    }

    // MARK: Header parsing

    /// Validates a header's JSON (`json`, the N header bytes) against a data buffer of
    /// `dataSize` bytes. Checks, in order: JSON object; metadata strings; per tensor dtype
    /// (F32 only), shape (non-negative integers whose product fits), data_offsets (integers,
    /// within the buffer, spanning exactly the shape's bytes); then that the tensors tile the
    /// buffer exactly, with no overlap, gap or unused tail.
    public static func parseHeader(_ json: [UInt8], dataSize: Int, path: String) throws -> Header {
        guard json.first == UInt8(ascii: "{") else {
            throw CheckpointError.invalidHeader(path: path, reason: "it does not start with '{'")
        }
        let root: JSONValue
        do { root = try JSONValue.parse(json) } catch let e as JSONValue.ParseError {
            throw CheckpointError.invalidHeader(path: path, reason: e.description)
        }
        guard case .object(let pairs) = root else {
            throw CheckpointError.invalidHeader(path: path, reason: "the top level is \(root.kind)")
        }
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in pairs {
            if name == "__metadata__" {
                guard case .object(let items) = value else {
                    throw CheckpointError.invalidMetadata(path: path, reason: "is \(value.kind), not an object")
                }
                for (key, item) in items {
                    guard case .string(let s) = item else {
                        throw CheckpointError.invalidMetadata(path: path, reason: "value of '\(key)' is \(item.kind), not a string")
                    }
                    metadata[key] = s
                }
                continue
            }
            entries.append(try parseEntry(name, value, dataSize: dataSize, path: path))
        }
        try checkTiling(entries, dataSize: dataSize, path: path)
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        let skipped = entries.filter { $0.dtype != "F32" }.map(\.name)
        entries.removeAll { $0.dtype != "F32" }
        return Header(entries: entries, metadata: metadata, dataStart: 0, fileSize: 0, skipped: skipped)
    }

    static func parseEntry(_ name: String, _ value: JSONValue, dataSize: Int, path: String) throws -> Entry {
        guard case .object(let fields) = value else {
            throw CheckpointError.invalidField(path: path, tensor: name, field: "(entry)", reason: "is \(value.kind), not an object")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let v = fields.first(where: { $0.key == key })?.value else {
                throw CheckpointError.missingField(path: path, tensor: name, field: key)
            }
            return v
        }
        guard case .string(let dtype) = try field("dtype") else {
            throw CheckpointError.invalidField(path: path, tensor: name, field: "dtype", reason: "is \(try field("dtype").kind), not a string")
        }
        // PyTorch's batch-norm counter is the one non-float tensor a torchvision state_dict has.
        let isBatchCounter = dtype == "I64" && name.hasSuffix(".num_batches_tracked")
        guard dtype == "F32" || isBatchCounter else {
            throw CheckpointError.unsupportedDtype(path: path, tensor: name,
                                                   dtype: knownDtypes.contains(dtype) ? dtype : "\(dtype) (not a safetensors dtype)")
        }
        func integers(_ key: String) throws -> [Int] {
            let v = try field(key)
            guard case .array(let items) = v else {
                throw CheckpointError.invalidField(path: path, tensor: name, field: key, reason: "is \(v.kind), not an array")
            }
            return try items.map { item in
                guard let i = item.integer else {
                    throw CheckpointError.invalidField(path: path, tensor: name, field: key,
                                                       reason: "contains \(item.kind), not an integer that fits in 64 bits")
                }
                return i
            }
        }
        let shape = try integers("shape")
        if let negative = shape.first(where: { $0 < 0 }) {
            throw CheckpointError.invalidShape(path: path, tensor: name, shape: shape, reason: "dimension \(negative) is negative")
        }
        // Checked up to the bytes of the widest dtype read (8); a large but representable size
        // is caught by the offsets.
        let elements: Int
        do {
            elements = try CheckedSize.product(shape, what: "shape")
            _ = try CheckedSize.bytes(elements: elements, elementSize: 8, what: "shape")
        } catch {
            throw CheckpointError.invalidShape(path: path, tensor: name, shape: shape,
                                               reason: "the element count overflows 64 bits")
        }
        let offsets = try integers("data_offsets")
        guard offsets.count == 2 else {
            throw CheckpointError.invalidField(path: path, tensor: name, field: "data_offsets",
                                               reason: "has \(offsets.count) numbers, not [begin, end]")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw CheckpointError.offsetsOutOfRange(path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
        }
        if isBatchCounter && elements != 1 {
            throw CheckpointError.invalidShape(path: path, tensor: name, shape: shape,
                                               reason: "a num_batches_tracked counter is one int64")
        }
        let elementBytes = isBatchCounter ? 8 : 4
        guard end - begin == elements * elementBytes else {
            throw CheckpointError.sizeMismatch(path: path, tensor: name, shape: shape, expectedBytes: elements * elementBytes,
                                               actualBytes: end - begin)
        }
        if let unknown = fields.first(where: { !["dtype", "shape", "data_offsets"].contains($0.key) }) {
            throw CheckpointError.invalidField(path: path, tensor: name, field: unknown.key, reason: "is not a field of a tensor entry")
        }
        return Entry(name: name, shape: shape, begin: begin, end: end, dtype: dtype)
    }

    /// The tensors must cover the data buffer exactly once, like the reference implementation
    /// requires: sorted by offset, each begins where the previous ended.
    static func checkTiling(_ entries: [Entry], dataSize: Int, path: String) throws {
        let sorted = entries.sorted { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var expected = 0
        var previous: Entry? = nil
        for e in sorted {
            if e.begin < expected, let previous {
                throw CheckpointError.overlappingTensors(path: path, tensor: e.name, other: previous.name)
            }
            if e.begin > expected {
                throw CheckpointError.unusedBytes(path: path, before: e.name, offset: expected, count: e.begin - expected)
            }
            expected = e.end
            if e.end > e.begin { previous = e }
        }
        if expected < dataSize {
            throw CheckpointError.unusedBytes(path: path, before: nil, offset: expected, count: dataSize - expected)
        }
    }
}

import Foundation

/// Everything that can be wrong with a checkpoint file, or with writing one. Each case names
/// the file and, where there is one, the tensor or header field.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// A tensor whose shape in the file differs from the one expected.
    public struct ShapeMismatch: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var expected: [Int]
        public var found: [Int]
        public init(name: String, expected: [Int], found: [Int]) {
            self.name = name
            self.expected = expected
            self.found = found
        }
        public var description: String { "\(name): file has \(found), expected \(expected)" }
    }

    case missingFile(path: String)
    case io(path: String, reason: String)
    /// The path is a directory, a named pipe, a device: `kind` says which.
    case notRegularFile(path: String, kind: String)
    /// Shorter than the 8-byte header length.
    case fileTooShort(path: String, size: Int)
    /// The header length says more bytes than the file has (or than any sane header).
    case headerTooLarge(path: String, headerLength: UInt64, fileSize: Int)
    /// The header is not valid JSON, or not a JSON object.
    case invalidHeader(path: String, reason: String)
    /// `__metadata__` is not an object of strings.
    case invalidMetadata(path: String, reason: String)
    case missingField(path: String, tensor: String, field: String)
    /// A field of the right name with a value of the wrong kind.
    case invalidField(path: String, tensor: String, field: String, reason: String)
    case unsupportedDtype(path: String, tensor: String, dtype: String)
    /// A negative dimension, or dimensions whose product cannot fit in the file.
    case invalidShape(path: String, tensor: String, shape: [Int], reason: String)
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// The byte range's length is not the shape's element count times 4.
    case sizeMismatch(path: String, tensor: String, shape: [Int], expectedBytes: Int, actualBytes: Int)
    case overlappingTensors(path: String, tensor: String, other: String)
    /// Bytes of the data buffer that belong to no tensor (`before` nil: at the end).
    case unusedBytes(path: String, before: String?, offset: Int, count: Int)
    /// Strict loading: tensors missing from the file, present but not expected, or mis-shaped.
    case stateMismatch(path: String, missing: [String], unexpected: [String], mismatched: [ShapeMismatch])
    /// A name that cannot be written (empty, duplicate, or `__metadata__`).
    case invalidName(path: String, name: String, reason: String)
    /// Writing failed; the previous file at `path`, if any, is untouched.
    case writeFailed(path: String, reason: String)

    public var path: String {
        switch self {
        case .missingFile(let p), .io(let p, _), .notRegularFile(let p, _), .fileTooShort(let p, _), .headerTooLarge(let p, _, _),
             .invalidHeader(let p, _), .invalidMetadata(let p, _), .missingField(let p, _, _),
             .invalidField(let p, _, _, _), .unsupportedDtype(let p, _, _), .invalidShape(let p, _, _, _),
             .offsetsOutOfRange(let p, _, _, _, _), .sizeMismatch(let p, _, _, _, _),
             .overlappingTensors(let p, _, _), .unusedBytes(let p, _, _, _), .stateMismatch(let p, _, _, _),
             .invalidName(let p, _, _), .writeFailed(let p, _):
            return p
        }
    }

    public var description: String {
        let damaged = "the file is damaged or was not written as safetensors"
        switch self {
        case .missingFile(let path):
            return "\(path): no such checkpoint file; check the path"
        case .io(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .notRegularFile(let path, let kind):
            return "\(path) is \(kind), not a regular file; give the path of a .safetensors file (or of a run folder where one is expected)"
        case .fileTooShort(let path, let size):
            return "\(path): \(size) bytes is too short for a safetensors file (8-byte header length first); \(damaged)"
        case .headerTooLarge(let path, let length, let size):
            return "\(path): header length \(length) bytes exceeds the file (\(size) bytes) or the 100 MB limit; \(damaged)"
        case .invalidHeader(let path, let reason):
            return "\(path): header is not a JSON object: \(reason); \(damaged)"
        case .invalidMetadata(let path, let reason):
            return "\(path): __metadata__ \(reason); it must map strings to strings"
        case .missingField(let path, let tensor, let field):
            return "\(path): tensor '\(tensor)' has no '\(field)' in the header; \(damaged)"
        case .invalidField(let path, let tensor, let field, let reason):
            return "\(path): tensor '\(tensor)': '\(field)' \(reason); \(damaged)"
        case .unsupportedDtype(let path, let tensor, let dtype):
            return "\(path): tensor '\(tensor)' has dtype \(dtype); only F32 is supported"
                + " (convert it, e.g. in PyTorch with {k: v.float() for k, v in state.items()})"
        case .invalidShape(let path, let tensor, let shape, let reason):
            return "\(path): tensor '\(tensor)' has shape \(shape): \(reason); \(damaged)"
        case .offsetsOutOfRange(let path, let tensor, let begin, let end, let size):
            return "\(path): tensor '\(tensor)' data_offsets [\(begin), \(end)] are outside the \(size)-byte data buffer; \(damaged)"
        case .sizeMismatch(let path, let tensor, let shape, let expected, let actual):
            return "\(path): tensor '\(tensor)' of shape \(shape) needs \(expected) bytes as F32,"
                + " its data_offsets span \(actual); \(damaged)"
        case .overlappingTensors(let path, let tensor, let other):
            return "\(path): tensors '\(other)' and '\(tensor)' overlap in the data buffer; \(damaged)"
        case .unusedBytes(let path, let before, let offset, let count):
            let place = before.map { "before tensor '\($0)'" } ?? "at the end of the data buffer"
            return "\(path): \(count) bytes at data offset \(offset) \(place) belong to no tensor; \(damaged)"
        case .stateMismatch(let path, let missing, let unexpected, let mismatched):
            var parts = [String]()
            if !missing.isEmpty { parts.append("missing tensors: " + missing.joined(separator: ", ")) }
            if !unexpected.isEmpty { parts.append("unexpected tensors: " + unexpected.joined(separator: ", ")) }
            if !mismatched.isEmpty { parts.append("shape mismatch: " + mismatched.map(\.description).joined(separator: "; ")) }
            return "\(path): checkpoint does not match the model (\(parts.joined(separator: "; ")));"
                + " was it written for another architecture or configuration?"
        case .invalidName(let path, let name, let reason):
            return "\(path): cannot write a tensor named '\(name)': \(reason)"
        case .writeFailed(let path, let reason):
            return "\(path): writing the checkpoint failed (\(reason)); any previous file there is unchanged"
        }
    }
}

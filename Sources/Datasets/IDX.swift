import Foundation
import Runtime

/// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian
/// magic number `0x0000TTDD` (TT = 0x08 for unsigned bytes, DD = the number of dimensions),
/// DD big-endian UInt32 dimensions, then the data in row-major order. Files may be gzip'd.
public enum IDX {
    /// Unsigned-byte data with 3 dimensions: (count, rows, columns).
    public static let imagesMagic: UInt32 = 0x0000_0803
    /// Unsigned-byte data with 1 dimension: (count).
    public static let labelsMagic: UInt32 = 0x0000_0801
    /// The largest data size (bytes after the header) accepted: 128 GiB, far above any IDX
    /// dataset (Fashion-MNIST's training images are 47 MB) and below what `Int` arithmetic on it
    /// could overflow.
    public static let maxDataSize = Int(Int32.max) * 64

    /// The contents of an images file: `count` images of `rows × columns` bytes, row-major.
    public struct Images: Sendable, Equatable {
        public var count: Int
        public var rows: Int
        public var columns: Int
        /// `count × rows × columns` pixels, 0 (background) to 255.
        public var pixels: [UInt8]
    }

    /// Reads an images file (gzip'd or plain), inflating no more than its header announces.
    public static func readImages(_ path: String) throws -> Images {
        try parseImages(FileBytes.read(path, limit: sizeLimit(magic: imagesMagic, path: path)), path: path)
    }

    /// Reads a labels file (gzip'd or plain); one byte per item.
    public static func readLabels(_ path: String) throws -> [UInt8] {
        try parseLabels(FileBytes.read(path, limit: sizeLimit(magic: labelsMagic, path: path)), path: path)
    }

    /// A file of `magic`'s kind holds no more than its header announces (header + data).
    public static func sizeLimit(magic: UInt32, path: String) -> SizeLimit {
        let headerSize = 4 + 4 * Int(magic & 0xFF)
        return SizeLimit(maximum: headerSize + maxDataSize, headerBytes: headerSize) { header in
            try headerSize + announcedDataSize(header, magic: magic, path: path).dataSize
        }
    }

    /// Parses the (decompressed) bytes of an images file; `path` names it in errors.
    public static func parseImages(_ bytes: [UInt8], path: String) throws -> Images {
        let dims = try parseHeader(bytes, magic: imagesMagic, path: path)
        var pixels = bytes
        pixels.removeFirst(4 + 4 * dims.count)
        return Images(count: dims[0], rows: dims[1], columns: dims[2], pixels: pixels)
    }

    /// Parses the (decompressed) bytes of a labels file; `path` names it in errors.
    public static func parseLabels(_ bytes: [UInt8], path: String) throws -> [UInt8] {
        let dims = try parseHeader(bytes, magic: labelsMagic, path: path)
        return Array(bytes[(4 + 4 * dims.count)...])
    }

    /// Checks the magic, the dimensions and that the data is exactly as long as they say;
    /// returns the dimensions.
    static func parseHeader(_ bytes: [UInt8], magic: UInt32, path: String) throws -> [Int] {
        let (dims, dataSize) = try announcedDataSize(bytes, magic: magic, path: path)
        let headerSize = 4 + 4 * dims.count
        let expected = headerSize + dataSize
        if bytes.count < expected {
            throw DatasetError.truncated(path: path, expectedBytes: expected, actualBytes: bytes.count)
        }
        if bytes.count > expected {
            throw DatasetError.trailingGarbage(path: path, expectedBytes: expected, actualBytes: bytes.count)
        }
        return dims
    }

    /// Checks the magic and the dimensions of a header (the first bytes of a file: at least the
    /// header); returns the dimensions and the data size they announce.
    static func announcedDataSize(_ bytes: [UInt8], magic: UInt32, path: String) throws -> (dims: [Int], dataSize: Int) {
        let rank = Int(magic & 0xFF)
        let headerSize = 4 + 4 * rank
        guard bytes.count >= 4 else {
            throw DatasetError.truncated(path: path, expectedBytes: headerSize, actualBytes: bytes.count)
        }
        let found = bigEndian32(bytes, at: 0)
        guard found == magic else { throw DatasetError.wrongMagic(path: path, found: found, expected: magic) }
        guard bytes.count >= headerSize else {
            throw DatasetError.truncated(path: path, expectedBytes: headerSize, actualBytes: bytes.count)
        }
        let dims = (0..<rank).map { Int(bigEndian32(bytes, at: 4 + 4 * $0)) }
        if let zero = dims.firstIndex(of: 0) {
            throw DatasetError.badDimensions(path: path, dimensions: dims, reason: "dimension \(zero) is zero")
        }
        do {
            let size = try CheckedSize.atMost(CheckedSize.product(dims, what: "IDX dimensions"), maxDataSize,
                                              what: "IDX data size", bound: "the largest IDX data this reader accepts")
            return (dims, size)
        } catch {
            throw DatasetError.badDimensions(path: path, dimensions: dims, reason: "they imply an absurd data size (\(error))")
        }
    }

    static func bigEndian32(_ bytes: [UInt8], at i: Int) -> UInt32 {
        UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    // MARK: Writing (tests, tools)

    /// The bytes of an IDX images file (uncompressed).
    public static func encodeImages(_ pixels: [UInt8], count: Int, rows: Int, columns: Int) -> [UInt8] {
        precondition(pixels.count == count * rows * columns,
                     "IDX.encodeImages: \(pixels.count) pixels for \(count)×\(rows)×\(columns)")
        return header(imagesMagic, [count, rows, columns]) + pixels
    }

    /// The bytes of an IDX labels file (uncompressed).
    public static func encodeLabels(_ labels: [UInt8]) -> [UInt8] {
        header(labelsMagic, [labels.count]) + labels
    }

    static func header(_ magic: UInt32, _ dims: [Int]) -> [UInt8] {
        ([magic] + dims.map { UInt32($0) }).flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    }
}

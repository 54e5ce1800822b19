import Foundation
import Runtime

/// Everything a dataset file on disk can get wrong. Each case names the file, says what is
/// wrong with it and what to do; none of them is a crash.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// The file does not exist (or cannot be opened).
    case missingFile(path: String, hint: String)
    /// Reading failed for another operating-system reason.
    case unreadable(path: String, reason: String)
    /// The path is a directory, a named pipe, a device: `kind` says which.
    case notRegularFile(path: String, kind: String)
    /// A dataset folder that is a file, a named pipe, a device: `kind` says which.
    case notADirectory(path: String, kind: String)

    /// Refuses `path` when something other than a folder is there (a missing folder is left to
    /// the file reads, whose error names the file and hints where to get it).
    public static func checkDirectory(_ path: String) throws {
        if let mode = RegularFile.kind(of: path), mode != S_IFDIR {
            throw DatasetError.notADirectory(path: path, kind: RegularFile.kindName(mode))
        }
    }
    /// The file, or what it inflates to, is larger than `limit` bytes; `reason` says where the
    /// limit comes from (the size the header announces, or the reader's limit). `bytes`: how
    /// many were read or inflated before stopping.
    case tooLarge(path: String, bytes: Int, limit: Int, reason: String)
    /// The file claims to be gzip (by name or by its first bytes) but does not inflate.
    case corruptGzip(path: String, reason: String)
    /// The IDX magic number is not the one expected for this kind of file.
    case wrongMagic(path: String, found: UInt32, expected: UInt32)
    /// The file ends before the header or the data the header announces.
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// The file has bytes after the data its header announces.
    case trailingGarbage(path: String, expectedBytes: Int, actualBytes: Int)
    /// A header dimension is zero, or so large the data cannot be what it says.
    case badDimensions(path: String, dimensions: [Int], reason: String)
    /// An images file and its labels file disagree on the number of items.
    case countMismatch(imagesPath: String, images: Int, labelsPath: String, labels: Int)
    /// A label is not in `0..<classCount`.
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    /// A record-format file (CIFAR) whose length is not a whole number of records.
    case partialRecord(path: String, byteCount: Int, recordSize: Int)
    /// A CSV cell that is not a number, or a row with the wrong number of cells.
    case badTable(path: String, line: Int, reason: String)
    /// An image file of an image folder that cannot be used: empty, not PNG or JPEG, corrupt,
    /// truncated, gone, unreadable (see `ImageFolder`).
    case badImage(path: String, reason: String)
    /// An image folder's layout is wrong: a folder that cannot be listed, an empty class, a
    /// class missing from a split, no split folders.
    case badImageFolder(path: String, reason: String)

    /// The file the error is about (for CountMismatch, the labels file).
    public var path: String {
        switch self {
        case .missingFile(let p, _), .unreadable(let p, _), .notRegularFile(let p, _), .notADirectory(let p, _), .tooLarge(let p, _, _, _), .corruptGzip(let p, _), .wrongMagic(let p, _, _),
             .truncated(let p, _, _), .trailingGarbage(let p, _, _), .badDimensions(let p, _, _),
             .labelOutOfRange(let p, _, _, _), .partialRecord(let p, _, _), .badTable(let p, _, _),
             .badImage(let p, _), .badImageFolder(let p, _):
            return p
        case .countMismatch(_, _, let p, _):
            return p
        }
    }

    public var description: String {
        let redownload = "the file is damaged or not what its name says: download or install it again"
        switch self {
        case .missingFile(let path, let hint):
            return "\(path): no such file. \(hint)"
        case .unreadable(let path, let reason):
            return "\(path): cannot read (\(reason)); check its permissions"
        case .notRegularFile(let path, let kind):
            return "\(path) is \(kind), not a regular file; give the path of the data file itself"
        case .notADirectory(let path, let kind):
            return "\(path) is \(kind), not a folder; give the folder that holds the dataset's files"
        case .tooLarge(let path, let bytes, let limit, let reason):
            return "\(path): more than \(limit) bytes, \(reason) (stopped at \(bytes)); the file is damaged,"
                + " not what its name says, or a decompression bomb"
        case .corruptGzip(let path, let reason):
            return "\(path): corrupt gzip data (\(reason)); \(redownload)"
        case .wrongMagic(let path, let found, let expected):
            return "\(path): IDX magic number is \(hex(found)), expected \(hex(expected))"
                + " (\(expected == IDX.imagesMagic ? "3-D unsigned-byte images" : "1-D unsigned-byte labels"));"
                + " is this the right file (images vs labels) and is it decompressed correctly?"
        case .truncated(let path, let expected, let actual):
            return "\(path): truncated: the header announces \(expected) bytes, the file has \(actual); \(redownload)"
        case .trailingGarbage(let path, let expected, let actual):
            return "\(path): \(actual - expected) unexpected bytes after the data (the header announces"
                + " \(expected) bytes, the file has \(actual)); \(redownload)"
        case .badDimensions(let path, let dims, let reason):
            return "\(path): bad dimensions \(dims): \(reason); \(redownload)"
        case .countMismatch(let imagesPath, let images, let labelsPath, let labels):
            return "\(labelsPath): \(labels) labels but \(imagesPath) has \(images) images;"
                + " the two files do not belong together (train vs test?)"
        case .labelOutOfRange(let path, let index, let label, let classCount):
            return "\(path): label \(label) of item \(index) is outside 0..<\(classCount);"
                + " wrong class count for this dataset, or \(redownload)"
        case .partialRecord(let path, let byteCount, let recordSize):
            return "\(path): \(byteCount) bytes is not a whole number of \(recordSize)-byte records"
                + " (\(byteCount % recordSize) bytes left over); CIFAR-10 records are 3073 bytes,"
                + " CIFAR-100 3074: wrong variant, or \(redownload)"
        case .badTable(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .badImage(let path, let reason):
            return "\(path): \(reason) (with skip-bad-images such files are left out)"
        case .badImageFolder(let path, let reason):
            return "\(path): \(reason)"
        }
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(format: "%08X", v) }
}

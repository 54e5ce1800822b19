import Foundation

/// CIFAR-10 and CIFAR-100 in their binary distributions (https://www.cs.toronto.edu/~kriz/cifar.html):
/// fixed-size records, each the label byte(s) followed by 3072 pixel bytes, a 32×32 red plane,
/// then green, then blue, each row-major: an image is already `(3, 32, 32)`.
///
/// - CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin` (10,000 records
///   each) and `test_batch.bin`; record = 1 label byte (0–9) + 3072.
/// - CIFAR-100 (`cifar-100-binary/`): `train.bin` (50,000) and `test.bin` (10,000); record =
///   coarse label (0–19) + fine label (0–99) + 3072.
public enum CIFAR {
    public enum Variant: Sendable, Equatable, CustomStringConvertible {
        case cifar10
        /// CIFAR-100 with its 100 fine labels, or its 20 coarse superclasses.
        case cifar100(coarse: Bool)

        public static let cifar100Fine = Variant.cifar100(coarse: false)

        /// Label bytes before each record's pixels.
        public var labelBytes: Int { self == .cifar10 ? 1 : 2 }
        public var recordSize: Int { labelBytes + CIFAR.imageBytes }
        /// Classes of the labels this variant uses.
        public var classCount: Int {
            switch self {
            case .cifar10: return 10
            case .cifar100(let coarse): return coarse ? 20 : 100
            }
        }
        public var description: String {
            switch self {
            case .cifar10: return "CIFAR-10"
            case .cifar100(let coarse): return coarse ? "CIFAR-100 (coarse labels)" : "CIFAR-100"
            }
        }
    }

    public static let imageBytes = 3 * 32 * 32
    /// The largest record file read (after decompression): 1 GiB, six times CIFAR-100's
    /// `train.bin` (153.7 MB), so that a gzip'd file inflating without end is refused early.
    public static let maxFileBytes = 1 << 30
    public static let cifar10ClassNames = ["airplane", "automobile", "bird", "cat", "deer",
                                           "dog", "frog", "horse", "ship", "truck"]

    /// The files of a split, in order.
    public static func fileNames(_ variant: Variant, _ split: DatasetSplit) -> [String] {
        switch (variant, split) {
        case (.cifar10, .train): return (1...5).map { "data_batch_\($0).bin" }
        case (.cifar10, .test): return ["test_batch.bin"]
        case (.cifar100, .train): return ["train.bin"]
        case (.cifar100, .test): return ["test.bin"]
        }
    }

    /// Loads a split from the extracted binary distribution in `directory`.
    public static func load(_ variant: Variant, _ split: DatasetSplit, directory: String) throws -> ImageDataset {
        try DatasetError.checkDirectory(directory)
        return try read(fileNames(variant, split).map { (directory as NSString).appendingPathComponent($0) }, variant: variant)
    }

    /// Reads and concatenates record files (gzip'd when named ".gz").
    public static func read(_ paths: [String], variant: Variant) throws -> ImageDataset {
        var pixels = [UInt8]()
        var labels = [Int32]()
        for path in paths {
            let hint = "Check the path: \(variant) is read from its binary distribution"
                + " (\(variant == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary")), extracted."
            let part = try parseRecords(FileBytes.read(path, missingHint: hint, limit: .atMost(maxFileBytes)),
                                        variant: variant, path: path)
            pixels.append(contentsOf: part.pixels)
            labels.append(contentsOf: part.labels)
        }
        return try ImageDataset(pixels: pixels, labels: labels, channels: 3, height: 32, width: 32,
                                classCount: variant.classCount,
                                classNames: variant == .cifar10 ? cifar10ClassNames : [],
                                path: paths.last ?? "<none>")
    }

    /// Splits the bytes of one record file into pixels and the variant's labels, checking the
    /// length is a whole number of records and every label byte is in range.
    public static func parseRecords(_ bytes: [UInt8], variant: Variant, path: String)
        throws -> (pixels: [UInt8], labels: [Int32]) {
        let record = variant.recordSize
        guard !bytes.isEmpty, bytes.count % record == 0 else {
            throw DatasetError.partialRecord(path: path, byteCount: bytes.count, recordSize: record)
        }
        let n = bytes.count / record
        var labels = [Int32](repeating: 0, count: n)
        var pixels = [UInt8](repeating: 0, count: n * imageBytes)
        for i in 0..<n {
            let r = i * record
            switch variant {
            case .cifar10:
                let label = Int(bytes[r])
                if label >= 10 { throw DatasetError.labelOutOfRange(path: path, index: i, label: label, classCount: 10) }
                labels[i] = Int32(label)
            case .cifar100(let coarse):
                let coarseLabel = Int(bytes[r]), fineLabel = Int(bytes[r + 1])
                if coarseLabel >= 20 {
                    throw DatasetError.labelOutOfRange(path: path, index: i, label: coarseLabel, classCount: 20)
                }
                if fineLabel >= 100 {
                    throw DatasetError.labelOutOfRange(path: path, index: i, label: fineLabel, classCount: 100)
                }
                labels[i] = Int32(coarse ? coarseLabel : fineLabel)
            }
        }
        pixels.withUnsafeMutableBufferPointer { dst in
            bytes.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    (dst.baseAddress! + i * imageBytes).update(from: src.baseAddress! + i * record + variant.labelBytes,
                                                               count: imageBytes)
                }
            }
        }
        return (pixels, labels)
    }

    /// The bytes of a record file (tests, tools). `labels` holds one array per label byte
    /// (CIFAR-100: coarse, then fine).
    public static func encodeRecords(pixels: [UInt8], labels: [[UInt8]]) -> [UInt8] {
        let n = pixels.count / imageBytes
        precondition(pixels.count == n * imageBytes && labels.allSatisfy { $0.count == n },
                     "CIFAR.encodeRecords: \(pixels.count) pixels and label arrays \(labels.map(\.count))")
        var out = [UInt8]()
        out.reserveCapacity(n * (imageBytes + labels.count))
        for i in 0..<n {
            for l in labels { out.append(l[i]) }
            out.append(contentsOf: pixels[(i * imageBytes)..<((i + 1) * imageBytes)])
        }
        return out
    }
}

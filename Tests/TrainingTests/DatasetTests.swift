import Datasets
import Foundation
import XCTest

/// Small IDX files: `count` images of rows×columns with pixel (i, y, x) = (i·31 + y·7 + x) mod 256.
private func sampleImages(count: Int, rows: Int = 3, columns: Int = 2) -> [UInt8] {
    var pixels = [UInt8]()
    for i in 0..<count { for y in 0..<rows { for x in 0..<columns { pixels.append(UInt8((i * 31 + y * 7 + x) % 256)) } } }
    return IDX.encodeImages(pixels, count: count, rows: rows, columns: columns)
}

final class IDXTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("idx") }
    override func tearDown() { dir.remove() }

    /// Asserts `body` throws a DatasetError naming `path`, and returns it.
    func expectError(naming path: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Any) -> DatasetError? {
        guard let e = assertThrows(DatasetError.self, file: file, line: line, body) else { return nil }
        XCTAssertEqual(e.path, path, file: file, line: line)
        XCTAssertTrue(e.description.contains(path), "message does not name the file: \(e)", file: file, line: line)
        return e
    }

    func testReadsPlainAndGzippedFiles() throws {
        let images = sampleImages(count: 5)
        let labels = IDX.encodeLabels([3, 1, 4, 1, 5])
        // Header bytes by hand: magic 0x00000803, then 5, 3, 2 big-endian.
        XCTAssertEqual(Array(images.prefix(16)), [0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 2])
        let plain = dir.write("images-idx3-ubyte", images)
        let gz = dir.write("images-idx3-ubyte.gz", FileBytes.gzip(images))
        let labelsPath = dir.write("labels-idx1-ubyte.gz", FileBytes.gzip(labels))
        for path in [plain, gz] {
            let read = try IDX.readImages(path)
            XCTAssertEqual([read.count, read.rows, read.columns], [5, 3, 2])
            XCTAssertEqual(read.pixels.count, 30)
            XCTAssertEqual(read.pixels[0], 0)
            XCTAssertEqual(read.pixels[1 * 6 + 2 * 2 + 1], UInt8(31 + 14 + 1)) // image 1, y 2, x 1
        }
        let dataset = try IDX.loadDataset(images: gz, labels: labelsPath, classCount: 10)
        XCTAssertEqual(dataset.labels, [3, 1, 4, 1, 5])
        XCTAssertEqual([dataset.count, dataset.channels, dataset.height, dataset.width], [5, 1, 3, 2])
    }

    func testConcatenatedGzipMembersAreOneStream() throws {
        let images = sampleImages(count: 4)
        let split = 20
        let path = dir.write("two-members.gz", FileBytes.gzip(Array(images[..<split])) + FileBytes.gzip(Array(images[split...])))
        XCTAssertEqual(try IDX.readImages(path).pixels, Array(images[16...]))
    }

    func testWrongMagic() {
        let labels = dir.write("labels.gz", FileBytes.gzip(IDX.encodeLabels([1, 2])))
        let e = expectError(naming: labels) { try IDX.readImages(labels) }
        XCTAssertEqual(e, .wrongMagic(path: labels, found: 0x801, expected: 0x803))
        let images = dir.write("images", sampleImages(count: 2))
        XCTAssertEqual(expectError(naming: images) { try IDX.readLabels(images) },
                       .wrongMagic(path: images, found: 0x803, expected: 0x801))
    }

    func testTruncatedHeaderAndData() {
        let full = sampleImages(count: 3)
        let shortData = dir.write("short.gz", FileBytes.gzip(Array(full.dropLast(5))))
        XCTAssertEqual(expectError(naming: shortData) { try IDX.readImages(shortData) },
                       .truncated(path: shortData, expectedBytes: 16 + 18, actualBytes: 16 + 13))
        let shortHeader = dir.write("header", Array(full.prefix(10)))
        XCTAssertEqual(expectError(naming: shortHeader) { try IDX.readImages(shortHeader) },
                       .truncated(path: shortHeader, expectedBytes: 16, actualBytes: 10))
        let empty = dir.write("empty", [])
        XCTAssertEqual(expectError(naming: empty) { try IDX.readLabels(empty) },
                       .truncated(path: empty, expectedBytes: 8, actualBytes: 0))
    }

    func testTrailingGarbage() {
        let path = dir.write("labels", IDX.encodeLabels([1, 2, 3]) + [0xFF, 0xFF])
        XCTAssertEqual(expectError(naming: path) { try IDX.readLabels(path) },
                       .trailingGarbage(path: path, expectedBytes: 11, actualBytes: 13))
    }

    func testZeroDimension() {
        var bytes = sampleImages(count: 1)
        bytes[11] = 0 // rows = 0
        let path = dir.write("zero-rows", bytes)
        guard case .badDimensions(_, let dims, _)? = expectError(naming: path, { try IDX.readImages(path) }) else {
            return XCTFail("expected badDimensions")
        }
        XCTAssertEqual(dims, [1, 0, 2])
    }

    func testCountMismatchBetweenImagesAndLabels() {
        let images = dir.write("images", sampleImages(count: 4))
        let labels = dir.write("labels", IDX.encodeLabels([0, 1, 2]))
        let e = expectError(naming: labels) { try IDX.loadDataset(images: images, labels: labels, classCount: 10) }
        XCTAssertEqual(e, .countMismatch(imagesPath: images, images: 4, labelsPath: labels, labels: 3))
        XCTAssertTrue(e?.description.contains(images) ?? false)
    }

    func testLabelOutOfRange() {
        let images = dir.write("images", sampleImages(count: 3))
        let labels = dir.write("labels", IDX.encodeLabels([0, 10, 2]))
        XCTAssertEqual(expectError(naming: labels) { try IDX.loadDataset(images: images, labels: labels, classCount: 10) },
                       .labelOutOfRange(path: labels, index: 1, label: 10, classCount: 10))
    }

    func testCorruptGzip() {
        let gz = FileBytes.gzip(sampleImages(count: 50))
        // A flipped byte inside the deflate data (after the 10-byte gzip header).
        var flipped = gz
        flipped[gz.count / 2] ^= 0x55
        let a = dir.write("flipped.gz", flipped)
        guard case .corruptGzip? = expectError(naming: a, { try IDX.readImages(a) }) else { return XCTFail("expected corruptGzip") }
        // A damaged CRC in the trailer.
        var badCRC = gz
        badCRC[gz.count - 6] ^= 0x01
        let b = dir.write("crc.gz", badCRC)
        guard case .corruptGzip? = expectError(naming: b, { try IDX.readImages(b) }) else { return XCTFail("expected corruptGzip") }
        // Cut short.
        let c = dir.write("cut.gz", Array(gz.prefix(gz.count - 20)))
        guard case .corruptGzip? = expectError(naming: c, { try IDX.readImages(c) }) else { return XCTFail("expected corruptGzip") }
        // Junk after the stream.
        let d = dir.write("junk.gz", gz + [1, 2, 3])
        guard case .corruptGzip? = expectError(naming: d, { try IDX.readImages(d) }) else { return XCTFail("expected corruptGzip") }
        // Named .gz but not gzip at all.
        let e = dir.write("plain.gz", sampleImages(count: 1))
        guard case .corruptGzip? = expectError(naming: e, { try IDX.readImages(e) }) else { return XCTFail("expected corruptGzip") }
    }

    func testMissingFileHintsAtSetup() {
        let path = dir.file("train-images-idx3-ubyte.gz")
        let e = expectError(naming: path) { try IDX.readImages(path) }
        guard case .missingFile? = e else { return XCTFail("expected missingFile, got \(String(describing: e))") }
        XCTAssertTrue(e!.description.contains("Scripts/setup.sh"))
        XCTAssertTrue(e!.description.contains("/usr/share/datasets/fashion-mnist"))
        // FashionMNIST.load on an empty directory fails the same way, naming the images file.
        let f = assertThrows(DatasetError.self) { try FashionMNIST.load(.train, directory: dir.path) }
        XCTAssertEqual(f?.path, path)
    }

    func testFashionMNISTLoaderOnSmallFiles() throws {
        dir.write("t10k-images-idx3-ubyte", IDX.encodeImages([UInt8](repeating: 7, count: 2 * 28 * 28), count: 2, rows: 28, columns: 28))
        dir.write("t10k-labels-idx1-ubyte.gz", FileBytes.gzip(IDX.encodeLabels([9, 0])))
        XCTAssertTrue(FashionMNIST.isAvailable(.test, directory: dir.path))
        XCTAssertFalse(FashionMNIST.isAvailable(.train, directory: dir.path))
        let test = try FashionMNIST.load(.test, directory: dir.path)
        XCTAssertEqual(test.labels, [9, 0])
        XCTAssertEqual(test.classNames[9], "Ankle boot")
        XCTAssertEqual(test.meanPixel, 7.0 / 255, accuracy: 1e-12)
    }
}

final class CIFARTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("cifar") }
    override func tearDown() { dir.remove() }

    /// The DatasetError `body` throws, after checking its message names the file.
    func readError(file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Any) -> DatasetError? {
        let e = assertThrows(DatasetError.self, file: file, line: line, body)
        if let e { XCTAssertTrue(e.description.contains(e.path), "message does not name the file: \(e)", file: file, line: line) }
        return e
    }

    /// `n` images whose pixel k of image i is (i + k) mod 256.
    func pixels(_ n: Int, from first: Int = 0) -> [UInt8] {
        (first..<(first + n)).flatMap { i in (0..<3072).map { UInt8((i + $0) % 256) } }
    }

    func testCIFAR10BatchesConcatenateInOrder() throws {
        // Records written by hand: label byte, then 3072 pixels.
        for b in 1...5 {
            var bytes = [UInt8]()
            for i in 0..<2 {
                bytes.append(UInt8((b * 2 + i) % 10))
                bytes.append(contentsOf: pixels(1, from: b * 2 + i))
            }
            dir.write("data_batch_\(b).bin", bytes)
        }
        dir.write("test_batch.bin", CIFAR.encodeRecords(pixels: pixels(3), labels: [[7, 8, 9]]))
        let train = try CIFAR.load(.cifar10, .train, directory: dir.path)
        XCTAssertEqual(train.count, 10)
        XCTAssertEqual(train.labels, [2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
        XCTAssertEqual([train.channels, train.height, train.width, train.classCount], [3, 32, 32, 10])
        XCTAssertEqual(Array(train.pixels[(3 * 3072)..<(3 * 3072 + 4)]), [5, 6, 7, 8]) // image 3 = batch 2 record 1
        XCTAssertEqual(train.pixels[3 * 3072 + 1024], UInt8((5 + 1024) % 256))          // its first green pixel
        let test = try CIFAR.load(.cifar10, .test, directory: dir.path)
        XCTAssertEqual(test.labels, [7, 8, 9])
        XCTAssertEqual(test.classNames[0], "airplane")
    }

    func testCIFAR100FineAndCoarseLabels() throws {
        dir.write("train.bin", CIFAR.encodeRecords(pixels: pixels(2), labels: [[19, 3], [99, 42]]))
        let fine = try CIFAR.load(.cifar100Fine, .train, directory: dir.path)
        XCTAssertEqual(fine.labels, [99, 42])
        XCTAssertEqual(fine.classCount, 100)
        let coarse = try CIFAR.load(.cifar100(coarse: true), .train, directory: dir.path)
        XCTAssertEqual(coarse.labels, [19, 3])
        XCTAssertEqual(coarse.pixels, pixels(2))
    }

    func testPartialRecord() {
        let path = dir.write("test_batch.bin", CIFAR.encodeRecords(pixels: pixels(2), labels: [[1, 2]]) + [0])
        let e = readError { try CIFAR.read([path], variant: .cifar10) }
        XCTAssertEqual(e, .partialRecord(path: path, byteCount: 2 * 3073 + 1, recordSize: 3073))
        XCTAssertTrue(e?.description.contains(path) ?? false)
        // A CIFAR-10 file read as CIFAR-100 does not divide either.
        let ten = dir.write("ten.bin", CIFAR.encodeRecords(pixels: pixels(3), labels: [[1, 2, 3]]))
        XCTAssertEqual(readError { try CIFAR.read([ten], variant: .cifar100Fine) },
                       .partialRecord(path: ten, byteCount: 3 * 3073, recordSize: 3074))
        let empty = dir.write("empty.bin", [])
        XCTAssertEqual(readError { try CIFAR.read([empty], variant: .cifar10) }?.path, empty)
    }

    func testLabelsOutOfRange() {
        let ten = dir.write("bad10.bin", CIFAR.encodeRecords(pixels: pixels(2), labels: [[3, 10]]))
        XCTAssertEqual(readError { try CIFAR.read([ten], variant: .cifar10) },
                       .labelOutOfRange(path: ten, index: 1, label: 10, classCount: 10))
        let hundred = dir.write("bad100.bin", CIFAR.encodeRecords(pixels: pixels(2), labels: [[20, 1], [5, 6]]))
        // The coarse label is checked even when the fine labels are used.
        XCTAssertEqual(readError { try CIFAR.read([hundred], variant: .cifar100Fine) },
                       .labelOutOfRange(path: hundred, index: 0, label: 20, classCount: 20))
    }

    func testMissingBatchIsNamed() {
        dir.write("data_batch_1.bin", CIFAR.encodeRecords(pixels: pixels(1), labels: [[1]]))
        let e = readError { try CIFAR.load(.cifar10, .train, directory: dir.path) }
        guard case .missingFile(let path, _)? = e else { return XCTFail("expected missingFile") }
        XCTAssertEqual(path, dir.file("data_batch_2.bin"))
    }
}

/// The real Fashion-MNIST training set, decoded at most once per test run.
let realFashionTrain: Result<ImageDataset, Error>? = {
    guard FashionMNIST.isAvailable(.train) else { return nil }
    let start = Date()
    let result = Result { try FashionMNIST.load(.train) }
    print("Fashion-MNIST train decode: \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
    return result
}()

final class RealFashionMNISTTests: XCTestCase {
    func testTrainingSet() throws {
        guard let result = realFashionTrain else {
            throw XCTSkip("Fashion-MNIST is not installed at \(FashionMNIST.defaultDirectory) (Scripts/setup.sh --data)")
        }
        let train = try result.get()
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual([train.channels, train.height, train.width], [1, 28, 28])
        XCTAssertEqual(Array(train.labels.prefix(8)), [9, 0, 0, 3, 0, 2, 7, 2])
        XCTAssertEqual(train.classHistogram, [Int](repeating: 6000, count: 10))
        XCTAssertEqual(train.meanPixel, 0.286, accuracy: 0.0005)
        let stats = train.channelStatistics()
        XCTAssertEqual(stats.mean[0], 0.286, accuracy: 0.0005)
        XCTAssertEqual(stats.std[0], 0.353, accuracy: 0.001)
    }

    func testTestSet() throws {
        guard FashionMNIST.isAvailable(.test) else { throw XCTSkip("Fashion-MNIST is not installed") }
        let test = try FashionMNIST.load(.test)
        XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(test.classHistogram, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(Array(test.labels.prefix(4)), [9, 2, 1, 1])
    }
}

final class NumericTableTests: XCTestCase {
    func testParsesHeaderAndRows() throws {
        let table = try NumericTable.parse("age,bmi,y\n0.038,0.061,151\r\n\n# comment\n-0.001,-0.051,75\n")
        XCTAssertEqual(table.columnNames, ["age", "bmi", "y"])
        XCTAssertEqual(table.rowCount, 2)
        XCTAssertEqual(table[1, 0], -0.001)
        XCTAssertEqual(table.column(named: "y"), [151, 75])
    }

    func testErrorsNameLineAndCell() {
        let dir = TemporaryDirectory("csv")
        defer { dir.remove() }
        let path = dir.write("t.csv", Array("a,b\n1,2\n3,x\n".utf8))
        let e = assertThrows(DatasetError.self) { try NumericTable.read(path) }
        XCTAssertEqual(e, .badTable(path: path, line: 3, reason: "cell 2 (b) is 'x', not a finite number"))
        let ragged = dir.write("r.csv", Array("1,2\n3\n".utf8))
        guard case .badTable(_, 2, _)? = assertThrows(DatasetError.self, { try NumericTable.read(ragged, hasHeader: false) }) else {
            return XCTFail("expected badTable on line 2")
        }
    }
}

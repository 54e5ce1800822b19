import Datasets
import DenseNetModels
import Foundation
import Training
import XCTest

/// Real Fashion-MNIST images written as PNG files into an image folder, trained through the
/// library path of `densenet train --data folder:DIR` (DatasetSpec.parse, TrainingRun).
final class FolderTrainingTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder("folder-training") }
    override func tearDown() { dir.remove() }

    /// `count` images of `split` as `root/<sub>/<k>-<class>/<i>.png` (class names made safe for
    /// file names, numbered so that name order is label order).
    func writeFashionMNIST(_ split: DatasetSplit, count: Int, into sub: String, jpeg: Bool = false) throws {
        let data = try FashionMNIST.load(split)
        let side = FashionMNIST.imageSide
        for i in 0..<count {
            let label = Int(data.labels[i])
            let name = "\(label)-" + FashionMNIST.classNames[label].replacingOccurrences(of: "/", with: "_")
            let pixels = Array(data.pixels[(i * side * side)..<((i + 1) * side * side)])
            let image = DecodedImage(width: side, height: side, channels: 1, pixels: pixels)
            if jpeg {
                dir.write("\(sub)/\(name)/\(i).jpg", try JPEGEncoder.encode(image, quality: 90))
            } else {
                dir.write("\(sub)/\(name)/\(i).png", try PNGEncoder.encode(image))
            }
        }
    }

    func testPNGFolderMatchesIDXPixelsAndTrainsAboveSeventyPercent() throws {
        guard FashionMNIST.isAvailable(.train) && FashionMNIST.isAvailable(.test) else {
            throw XCTSkip("Fashion-MNIST is not installed (Scripts/setup.sh installs dataset-fashion-mnist)")
        }
        try writeFashionMNIST(.train, count: 2000, into: "train")
        try writeFashionMNIST(.test, count: 1000, into: "val")

        // resize=96: the whole 28x28 image scaled to the d2l model's 96x96 (no crop), as the IDX path does.
        let spec = try DatasetSpec.parse("folder:\(dir.path),resize=96")
        let (run, log) = try capturingLog {
            try TrainingRun(.fresh(TrainingConfiguration(
                model: try ModelZoo.configuration(named: "d2l"), strategy: .shared, data: spec,
                epochs: 2, batchSize: 64, seed: 0, augment: false)), outputDirectory: dir.file("run"))
        }
        XCTAssertEqual(run.trainSet.count, 2000)
        XCTAssertEqual(run.testSet.count, 1000)
        XCTAssertEqual(run.trainSet.channels, 1)
        XCTAssertEqual(run.trainSet.classNames.first, "0-T-shirt_top")
        XCTAssertTrue(log.contains { $0.contains("2000 images in 10 classes") }, "\(log)")

        // The decoded pixels are Fashion-MNIST's bytes exactly.
        let idx = try FashionMNIST.load(.train)
        for k in [0, 1, 977, 1999] {
            let path = run.trainSet.files!.paths[k]
            let i = Int(((path as NSString).lastPathComponent as NSString).deletingPathExtension)!
            XCTAssertEqual(run.trainSet.labels[k], idx.labels[i])
            XCTAssertEqual(try run.trainSet.files!.decode(k).pixels, Array(idx.pixels[(i * 784)..<((i + 1) * 784)]))
        }

        let started = Date()
        let summary = try run.run()
        let seconds = Date().timeIntervalSince(started)
        let accuracy = try XCTUnwrap(summary.lastTest?.accuracy)
        print("folder (PNG) d2l 2 epochs on 2000 images: test accuracy \(accuracy) on 1000, \(Int(seconds)) s,"
              + " \(Int(summary.imagesPerSecond)) images/s in the last epoch")
        XCTAssertGreaterThan(accuracy, 0.70)
        XCTAssertEqual(summary.lastTest?.examples, 1000)
    }

    func testJPEGFolderTrainsAboveSeventyPercent() throws {
        guard FashionMNIST.isAvailable(.train) && FashionMNIST.isAvailable(.test) else {
            throw XCTSkip("Fashion-MNIST is not installed (Scripts/setup.sh installs dataset-fashion-mnist)")
        }
        try writeFashionMNIST(.train, count: 2000, into: "train", jpeg: true)
        try writeFashionMNIST(.test, count: 1000, into: "val", jpeg: true)
        let spec = try DatasetSpec.parse("folder:\(dir.path),resize=96")
        let (run, _) = try capturingLog {
            try TrainingRun(.fresh(TrainingConfiguration(
                model: try ModelZoo.configuration(named: "d2l"), strategy: .shared, data: spec,
                epochs: 2, batchSize: 64, seed: 0, augment: false)), outputDirectory: dir.file("run"))
        }
        XCTAssertEqual(run.trainSet.count, 2000)
        XCTAssertTrue(run.trainSet.files!.paths.allSatisfy { $0.hasSuffix(".jpg") })
        // Lossy at quality 90, but close to the IDX bytes.
        let idx = try FashionMNIST.load(.train)
        let path = run.trainSet.files!.paths[5]
        let i = Int(((path as NSString).lastPathComponent as NSString).deletingPathExtension)!
        let decoded = try run.trainSet.files!.decode(5).pixels
        let original = Array(idx.pixels[(i * 784)..<((i + 1) * 784)])
        let meanError = Double(zip(decoded, original).map { abs(Int($0) - Int($1)) }.reduce(0, +)) / 784
        XCTAssertLessThan(meanError, 4, "mean absolute difference from the IDX bytes")

        let started = Date()
        let summary = try run.run()
        let accuracy = try XCTUnwrap(summary.lastTest?.accuracy)
        print("folder (JPEG q90) d2l 2 epochs on 2000 images: test accuracy \(accuracy) on 1000,"
              + " \(Int(Date().timeIntervalSince(started))) s, \(Int(summary.imagesPerSecond)) images/s in the last epoch;"
              + " mean |JPEG - IDX| of one image \(meanError)")
        XCTAssertGreaterThan(accuracy, 0.70)
    }
}

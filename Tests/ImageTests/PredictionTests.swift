import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// `densenet predict`'s library path: a model trained on an image folder classifies new files.
final class PredictionTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder("prediction") }
    override func tearDown() { dir.remove() }

    /// A 16 x 16 grey noise image, dark (0-59) or light (196-255).
    func noisePNG(light: Bool, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        let pixels = (0..<256).map { _ in UInt8((light ? 196 : 0) + Int(rng.next() % 60)) }
        return try! PNGEncoder.encode(DecodedImage(width: 16, height: 16, channels: 1, pixels: pixels))
    }

    func trainedRun() throws -> String {
        for split in ["train", "val"] {
            for i in 0..<16 {
                dir.write("data/\(split)/dark/\(i).png", noisePNG(light: false, seed: UInt64(i) + (split == "val" ? 100 : 0)))
                dir.write("data/\(split)/light/\(i).png", noisePNG(light: true, seed: UInt64(i) + (split == "val" ? 300 : 200)))
            }
        }
        let model = DenseNetConfiguration(name: "tiny", growthRate: 4, blockConfig: [2, 2], initialFeatures: 8, bottleneckFactor: 2,
                                          compression: 0.5, classCount: 2, inputShape: FeatureShape(channels: 1, height: 16, width: 16),
                                          stem: .cifar)
        let spec = try DatasetSpec.parse("folder:\(dir.file("data")),resize=16")
        let run = try capturingLog {
            try TrainingRun(.fresh(TrainingConfiguration(model: .denseNet(model), data: spec, epochs: 3,
                                                         batchSize: 8, seed: 1, augment: false)),
                            outputDirectory: dir.file("run"))
        }.0
        let summary = try run.run()
        XCTAssertEqual(summary.lastTest?.accuracy, 1, "dark against light is easy")
        return dir.file("run")
    }

    func testPredictionsOfATrainedFolderModel() throws {
        let run = try trainedRun()
        XCTAssertEqual(try TrainingCheckpoint.classNames(inFile: run + "/model.safetensors"), ["dark", "light"])
        let predictor = try Predictor(checkpoint: run)
        XCTAssertEqual(predictor.classNames, ["dark", "light"])
        XCTAssertEqual(predictor.resize, 16)
        XCTAssertEqual(predictor.normalization, Normalization(mean: [0.449], std: [0.226]))
        XCTAssertEqual(predictor.notes, [])

        dir.write("new/b/light, bright.png", noisePNG(light: true, seed: 900))
        dir.write("new/a/dark.png", noisePNG(light: false, seed: 901))
        dir.write("new/a/.hidden.png", [0])
        dir.write("new/a/readme.txt", Array("not an image".utf8))
        let single = dir.write("single.png", noisePNG(light: false, seed: 902))
        let paths = try Predictor.imageFiles([dir.file("new"), single])
        XCTAssertEqual(paths, [dir.file("new/a/dark.png"), dir.file("new/b/light, bright.png"), single])

        let rows = try predictor.predict(paths, top: 2, batchSize: 2)
        XCTAssertEqual(rows.map(\.path), paths)
        XCTAssertEqual(rows.map { $0.classes[0] }, ["dark", "light", "dark"])
        for row in rows {
            XCTAssertEqual(row.probabilities.reduce(0, +), 1, accuracy: 1e-9, "both classes: softmax sums to 1")
            XCTAssertGreaterThan(row.probabilities[0], row.probabilities[1])
        }
        let csv = Predictor.csv(rows, top: 2).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(csv.count, 5)   // header, 3 rows, final newline
        XCTAssertEqual(csv[0], "file,class_1,probability_1,class_2,probability_2")
        XCTAssertTrue(csv[2].hasPrefix("\"\(dir.file("new/b/light, bright.png"))\",light,0."), String(csv[2]))
        XCTAssertEqual(csv[4], "")

        // A bad file: an error naming it, or left out.
        let truncated = dir.write("bad.png", Array(noisePNG(light: true, seed: 5).prefix(60)))
        XCTAssertThrowsError(try predictor.predict([single, truncated], top: 1)) { error in
            guard case DatasetError.badImage(let path, _)? = error as? DatasetError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, truncated)
        }
        let kept = try capturingLog { try predictor.predict([single, truncated], top: 1, skipBadImages: true) }.0
        XCTAssertEqual(kept.map(\.path), [single])
        XCTAssertThrowsError(try Predictor.imageFiles([dir.file("nowhere")]))
    }
}

import Autograd
import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// Whole runs of `TrainingRun` on a few hundred real Fashion-MNIST images with a tiny DenseNet.
final class TrainingLoopTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("training-loop") }
    override func tearDown() { dir.remove() }

    func configuration(epochs: Int, limit: Int, batch: Int, dropRate: Double = 0,
                       strategy: MemoryPolicy = .shared) -> TrainingConfiguration {
        TrainingConfiguration(
            model: .denseNet(tinyDenseNet(dropRate: dropRate)), strategy: strategy,
            data: .fashionMNIST(directory: FashionMNIST.defaultDirectory), epochs: epochs, batchSize: batch,
            optimizer: OptimizerSettings(kind: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4, nesterov: true),
            schedule: .cosine, warmupEpochs: 0.5, seed: 7, limit: limit, testLimit: 100)
    }

    func testShortRunLowersTheLoss() throws {
        try requireFashionMNIST()
        let run = try TrainingRun(.fresh(configuration(epochs: 4, limit: 512, batch: 32)), outputDirectory: dir.file("run"))
        let summary = try run.run()
        let epochLoss = summary.records.filter { $0.phase == .trainEpoch }.map(\.loss)
        XCTAssertEqual(epochLoss.count, 4)
        XCTAssertLessThan(epochLoss[3], 0.8 * epochLoss[0], "epoch mean losses \(epochLoss)")
        let test = summary.records.filter { $0.phase == .test }
        XCTAssertEqual(test.count, 4)
        XCTAssertLessThan(test[3].loss, log(10.0), "test loss below chance level")
        XCTAssertGreaterThan(summary.lastTest?.accuracy ?? 0, 0.4, "test accuracy well above chance (0.1)")
        XCTAssertEqual(summary.lastTest?.examples, 100)
        // The run's folder: checkpoint pair, metrics in three forms.
        for name in ["model.safetensors", "training-state.safetensors", "metrics.csv", "metrics.json", "curves.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file("run/\(name)")), name)
        }
        let csv = try String(contentsOfFile: dir.file("run/metrics.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + 4 * 16 + 4 + 4)   // header, 16 steps per epoch, epoch means, tests
        let svg = try String(contentsOfFile: dir.file("run/curves.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("test accuracy") && svg.contains("<polyline"))
    }

    /// Two epochs straight, against one epoch + resume + one epoch, and against a stop in the
    /// middle of the first epoch + resume: every logged loss and accuracy is bit-for-bit the same.
    func testResumeReproducesTheUninterruptedRun() throws {
        try requireFashionMNIST()
        let c = configuration(epochs: 2, limit: 300, batch: 50, dropRate: 0.2, strategy: .minimal)

        let straight = try TrainingRun(.fresh(c), outputDirectory: dir.file("straight")).run()
        XCTAssertFalse(straight.stoppedEarly)

        let first = try TrainingRun(.fresh(c), outputDirectory: dir.file("epochs"))
        first.stopAfterEpoch = 1
        let partial = try first.run()
        XCTAssertTrue(partial.stoppedEarly)
        XCTAssertEqual(partial.epochsCompleted, 1)
        let resumedAtEpoch = try TrainingRun(.resume(path: dir.file("epochs"), epochs: nil, data: nil)).run()

        let second = try TrainingRun(.fresh(c), outputDirectory: dir.file("steps"))
        second.stopAfterStep = 4   // of 6 in the first epoch
        XCTAssertEqual(try second.run().globalStep, 4)
        let resumedMidEpoch = try TrainingRun(.resume(path: dir.file("steps/model.safetensors"), epochs: nil, data: nil)).run()

        func numbers(_ s: TrainingSummary) -> [String] {
            s.records.map { "\($0.phase.rawValue) \($0.epoch) \($0.step) \($0.loss.bitPattern) \($0.accuracy.bitPattern) \($0.learningRate)" }
        }
        XCTAssertEqual(straight.records.filter { $0.phase == .train }.count, 12)
        XCTAssertEqual(numbers(resumedAtEpoch), numbers(straight))
        XCTAssertEqual(numbers(resumedMidEpoch), numbers(straight))
        // The CSV on disk holds the same numbers (17 significant digits read back to the same bits).
        let csv = { (name: String) in
            try String(contentsOfFile: self.dir.file("\(name)/metrics.csv"), encoding: .utf8)
                .split(separator: "\n").map { $0.split(separator: ",").prefix(6).joined(separator: ",") }
        }
        XCTAssertEqual(try csv("steps"), try csv("straight"))
        XCTAssertEqual(try csv("epochs"), try csv("straight"))
    }

    func testResumeRefusesAFinishedRunAndAMismatchedPair() throws {
        try requireFashionMNIST()
        var c = configuration(epochs: 1, limit: 64, batch: 32)
        c.testLimit = 32
        _ = try TrainingRun(.fresh(c), outputDirectory: dir.file("a")).run()
        XCTAssertThrowsError(try TrainingRun(.resume(path: dir.file("a"), epochs: nil, data: nil))) { error in
            XCTAssertEqual(error as? TrainingError, .alreadyFinished(epochs: 1, path: self.dir.file("a")))
        }
        // A model file from another save next to this state file.
        c.epochs = 2
        let b = try TrainingRun(.fresh(c), outputDirectory: dir.file("b"))
        b.stopAfterEpoch = 1
        _ = try b.run()
        // (b's only checkpoint folder; the run folder's model.safetensors is a link to it.)
        let torn = try XCTUnwrap(TrainingCheckpoint.completeCheckpoints(inRun: dir.file("b")).first)
        try FileManager.default.removeItem(atPath: torn.model)
        try FileManager.default.copyItem(atPath: TrainingCheckpoint.completeCheckpoints(inRun: dir.file("a"))[0].model,
                                         toPath: torn.model)
        XCTAssertThrowsError(try TrainingRun(.resume(path: dir.file("b"), epochs: nil, data: nil))) { error in
            guard case .checkpointPairMismatch? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("training-state.safetensors"), "\(error)")
        }
    }
}

import Datasets
import DenseNetModels
import Foundation
import Training
import XCTest

/// Issue 11, class 1: a training batch that would give a batch norm one value per channel is
/// refused before the run (`--batch 1`, a one-example epoch), or, as the last partial batch of
/// an epoch, dropped like PyTorch's `drop_last` and said in the log; never a crash.
final class HostileBatchNormTests: XCTestCase {
    var dir: TemporaryDirectory!
    var data: String!
    override func setUp() {
        dir = TemporaryDirectory("hostile-batchnorm")
        data = dir.file("cifar")
        writeMiniatureCIFAR10(in: data)
    }
    override func tearDown() { dir.remove() }

    func configuration(batch: Int, limit: Int?, epochs: Int = 1, side: Int = 2) -> TrainingConfiguration {
        var c = hostileConfiguration(data: data, epochs: epochs, batch: batch, side: side)
        c.limit = limit
        return c
    }

    func testTheModelsBatchNormNeedsAreReadFromItsLayers() throws {
        let tiny = try Architecture(configuration(batch: 4, limit: nil).model)
        XCTAssertEqual(tiny.sparsestBatchNorm?.name, "features.denseblock2.denselayer1.norm1")
        XCTAssertEqual(tiny.sparsestBatchNorm?.valuesPerExample, 1)
        XCTAssertEqual(tiny.minimumTrainingBatch, 2)
        XCTAssertEqual(try Architecture(configuration(batch: 4, limit: nil, side: 8).model).minimumTrainingBatch, 1)
        XCTAssertEqual(try Architecture(.denseMLP(DenseMLPConfiguration(batchNorm: true))).minimumTrainingBatch, 2)
        XCTAssertEqual(try Architecture(.denseMLP(DenseMLPConfiguration(batchNorm: false))).minimumTrainingBatch, 1)
        XCTAssertEqual(try Architecture(ModelZoo.configuration(named: "densenet121", input: "3x32x32")).minimumTrainingBatch, 2)
        XCTAssertEqual(try Architecture(ModelZoo.configuration(named: "d2l")).minimumTrainingBatch, 1)
    }

    func testImpossibleBatchesAreRefusedBeforeTheRun() {
        refuses("--batch 1", mentioning: ["--batch 1", "expected more than 1 value per channel", "features.denseblock2.denselayer1.norm1", "--batch 2"]) {
            try TrainingRun(.fresh(configuration(batch: 1, limit: nil)), outputDirectory: dir.file("b1"))
        }
        refuses("--limit 1 --batch 4", mentioning: ["--limit 1", "1 training example", "features.denseblock2.denselayer1.norm1"]) {
            try TrainingRun(.fresh(configuration(batch: 4, limit: 1)), outputDirectory: dir.file("l1"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("b1")), "refused before anything is written")
    }

    /// `--limit 5 --batch 4` (as the issue's `--limit 65 --batch 64`): the last batch of one is
    /// dropped, the log says so, and the run trains, checkpoints and resumes consistently.
    func testAPartialLastBatchOfOneIsDroppedAndSaid() throws {
        let run = try TrainingRun(.fresh(configuration(batch: 4, limit: 5, epochs: 3)), outputDirectory: dir.file("run"))
        let messages = RecordedMessages()
        run.observer = messages
        run.stopAfterEpoch = 2
        let summary = try run.run()
        XCTAssertEqual(summary.globalStep, 2, "one step per epoch: the batch of 1 is dropped")
        XCTAssertEqual(summary.records.filter { $0.phase == .train }.count, 2)
        XCTAssertTrue(messages.lines.contains { $0.contains("dropped") && $0.contains("4 of 5 examples") }, "\(messages.lines)")
        let resumed = try TrainingRun(.resume(path: dir.file("run"), epochs: nil, data: nil))
        XCTAssertEqual(try resumed.run().globalStep, 3)
        // And a model whose batch norms see more than one value per example trains on batches of 1.
        let ones = try TrainingRun(.fresh(configuration(batch: 1, limit: 3, side: 8)), outputDirectory: dir.file("ones")).run()
        XCTAssertEqual(ones.globalStep, 3)
    }

    /// The regression run (an MLP with batch norm over features) keeps every batch: a batch
    /// size that leaves one row, or is one, is refused before it trains.
    func testRegressionBatchesOfOneAreRefused() throws {
        let rows = (0..<5).map { "\($0),\($0 * 2),\($0 % 3)" }
        let table = dir.write("t.csv", Array((["a,b,target"] + rows).joined(separator: "\n").utf8))
        let model = ModelConfiguration.denseMLP(DenseMLPConfiguration(inputFeatures: 2, growthRate: 4, blockConfig: [2],
                                                                      batchNorm: true))
        for batch in [1, 4] {
            let c = TrainingConfiguration(model: model, data: .table(train: table, test: table), batchSize: batch)
            refuses("regression --batch \(batch) of 5 rows", mentioning: ["--batch \(batch)", "more than 1 value per channel"]) {
                try RegressionRun(c, outputDirectory: dir.file("r\(batch)"))
            }
        }
        let ok = TrainingConfiguration(model: model, data: .table(train: table, test: table), batchSize: 3)
        XCTAssertEqual(try RegressionRun(ok, outputDirectory: dir.file("r3")).run().globalStep, 2)
    }

    func testLoaderDropsOnlyTooSmallLastBatches() throws {
        let data = hostileDataset(65)
        let loader = DataLoader(data, options: DataLoaderOptions(batchSize: 64, prefetch: false, minimumLastBatch: 2))
        XCTAssertEqual(loader.batchesPerEpoch, 1)
        XCTAssertEqual(try loader.next()?.labels.count, 64)
        XCTAssertNil(try loader.next())
        XCTAssertNoThrow(try loader.restore(DataLoaderState(seed: 0, epoch: 0, position: 64, exampleCount: 65, batchSize: 64)))
        refuses("position past the dropped batch", mentioning: ["position 65"]) {
            try loader.restore(DataLoaderState(seed: 0, epoch: 0, position: 65, exampleCount: 65, batchSize: 64))
        }
        XCTAssertEqual(DataLoader(hostileDataset(66), options: DataLoaderOptions(batchSize: 64, prefetch: false, minimumLastBatch: 2))
            .batchesPerEpoch, 2, "a last batch of 2 is kept")
    }
}

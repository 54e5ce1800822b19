import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

/// Regression on CSV tables (`densenet train --data csv:`), the plain `mlp` in checkpoints,
/// and `--transition-pooling`.
final class RegressionTests: XCTestCase {
    func testTableSplitsFeaturesAndTargetAndBatchesFeatureMajor() throws {
        let table = try RegressionTable(NumericTable.parse("a,b,y\n1,2,3\n4,5,6\n7,8,9\n"))
        XCTAssertEqual(table.featureNames, ["a", "b"])
        XCTAssertEqual(table.targetName, "y")
        XCTAssertEqual(table.features, [1, 2, 4, 5, 7, 8])
        XCTAssertEqual(table.targets, [3, 6, 9])
        let batch = table.batch([2, 0])
        XCTAssertEqual(batch.features.shape, [2, 2])
        XCTAssertEqual(batch.features.array, [7, 1, 8, 2])   // (F, N): row a, then row b
        XCTAssertEqual(batch.targets, [9, 3])
        XCTAssertEqual(table.prefix(2).targets, [3, 6])
        XCTAssertEqual(table.prefix(2).features, [1, 2, 4, 5])
        XCTAssertThrowsError(try RegressionTable(NumericTable.parse("y\n1\n2\n")))
    }

    func testShuffleIsASeededPermutationPerEpoch() {
        let a = RegressionRun.order(rows: 50, seed: 7, epoch: 0)
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertEqual(a, RegressionRun.order(rows: 50, seed: 7, epoch: 0))
        XCTAssertNotEqual(a, RegressionRun.order(rows: 50, seed: 7, epoch: 1))
        XCTAssertNotEqual(a, RegressionRun.order(rows: 50, seed: 8, epoch: 0))
        XCTAssertEqual(RegressionRun.order(rows: 1, seed: 7, epoch: 0), [0])
    }

    /// A model that predicts the constant c everywhere (output weights 0, bias c) has the MSE
    /// mean((c − t)²), counted here by hand.
    func testMeanSquaredErrorOfAConstantPredictor() throws {
        let model = try ModelFactory.build(named: "mlp", input: "2")
        guard let plain = model as? PlainMLP else { return XCTFail("mlp is not a PlainMLP") }
        plain.output.weight.value.fill(0)
        plain.output.bias!.value.fill(0.5)
        let table = try RegressionTable(NumericTable.parse("a,b,y\n1,2,1.5\n4,5,-0.5\n7,8,0.5\n"))
        // (1.5 − .5)² + (−.5 − .5)² + 0 = 2, over 3 rows; batch 2 splits the rows 2 + 1.
        XCTAssertEqual(Trainer.meanSquaredError(model, table: table, batchSize: 2), 2.0 / 3.0, accuracy: 1e-6)
    }

    /// y = 0.8·a − 0.5·b on 96 standard-normal rows: both MLPs learn it far below the
    /// target's variance, and the files say what the summary says.
    func testRunLearnsALinearTargetAndWritesTestMSE() throws {
        let dir = TemporaryDirectory("regression-tests")
        defer { dir.remove() }
        var g = SeededGenerator(seed: 5)
        func table(_ rows: Int) -> String {
            var lines = ["a,b,target"]
            for _ in 0..<rows {
                let a = g.nextNormal(), b = g.nextNormal()
                lines.append("\(a),\(b),\(0.8 * a - 0.5 * b)")
            }
            return lines.joined(separator: "\n") + "\n"
        }
        let train = dir.write("train.csv", Array(table(96).utf8))
        let test = dir.write("test.csv", Array(table(32).utf8))
        let targetVariance = 0.8 * 0.8 + 0.5 * 0.5
        for name in ["dense-mlp", "mlp"] {
            let model = try ModelZoo.configuration(named: name, classes: 1, input: "2")
            let c = TrainingConfiguration(model: model, strategy: .naive, data: .table(train: train, test: test),
                                          epochs: 40, batchSize: 16,
                                          optimizer: OptimizerSettings(kind: .adam, learningRate: 0.01, momentum: 0, weightDecay: 0))
            let out = dir.file("run-\(name)")
            let summary = try RegressionRun(c, outputDirectory: out).run()
            XCTAssertEqual(summary.globalStep, 40 * 6)
            XCTAssertLessThan(summary.testMSE, 0.05 * targetVariance, name)
            let first = try XCTUnwrap(summary.records.first { $0.phase == .test })
            XCTAssertLessThan(summary.testMSE, first.loss, name)
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json"))) as? [String: Any]
            // (JSONSerialization may read the last digit differently.)
            XCTAssertEqual(try XCTUnwrap(json?["test_mse"] as? Double), summary.testMSE, accuracy: 1e-12, name)
            XCTAssertEqual(try XCTUnwrap(json?["train_mse"] as? Double), summary.trainMSE, accuracy: 1e-12, name)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/metrics.csv"))
        }
    }

    func testRegressionRefusesImageModelsAndSeveralOutputs() throws {
        let table = DatasetSpec.table(train: "t.csv", test: "s.csv")
        let images = TrainingConfiguration(model: try ModelZoo.configuration(named: "d2l"), data: table)
        XCTAssertThrowsError(try images.validate())
        let two = TrainingConfiguration(model: try ModelZoo.configuration(named: "mlp", classes: 2), data: table)
        XCTAssertThrowsError(try two.validate())
        let one = TrainingConfiguration(model: try ModelZoo.configuration(named: "mlp", classes: 1), data: table)
        XCTAssertNoThrow(try one.validate())
        // A table is not an image data set, and image data are not a table.
        XCTAssertThrowsError(try TrainingRun(.fresh(one), outputDirectory: "unused"))
        let fashion = TrainingConfiguration(model: try ModelZoo.configuration(named: "mlp", classes: 1),
                                            data: .fashionMNIST(directory: "unused"))
        XCTAssertThrowsError(try RegressionRun(fashion, outputDirectory: "unused"))
    }

    func testPlainMLPDescriptionRoundTripsAndOldOnesStayDense() throws {
        let mlp = try ModelZoo.configuration(named: "mlp")
        XCTAssertEqual(try ModelConfiguration(json: mlp.json), mlp)
        // A description written before `denseConnections` existed is the dense MLP.
        var json = try ModelZoo.configuration(named: "dense-mlp").json
        json = json.replacingOccurrences(of: "\"denseConnections\":true,", with: "")
        XCTAssertFalse(json.contains("denseConnections"), json)
        guard case .denseMLP(let c) = try ModelConfiguration(json: json) else { return XCTFail() }
        XCTAssertTrue(c.denseConnections)
    }

    func testTransitionPoolingOption() throws {
        XCTAssertEqual(try ModelOptions.transitionPooling("avg"), .average)
        XCTAssertEqual(try ModelOptions.transitionPooling("MAX"), .max)
        XCTAssertThrowsError(try ModelOptions.transitionPooling("min"))
        let d2l = try ModelZoo.configuration(named: "d2l")
        let maxed = try ModelOptions.applying(transitionPooling: "max", to: d2l)
        let a = try Architecture(maxed)
        XCTAssertEqual(a.layer(named: "features.transition1.pool")?.kind, .maxPool(PoolingSpec(kernel: 2, stride: 2)))
        XCTAssertEqual(a.trainableParameters, 758_226)   // pooling has no parameters
        XCTAssertEqual(try ModelOptions.applying(transitionPooling: nil, to: d2l), d2l)
        XCTAssertEqual(try ModelConfiguration(json: maxed.json), maxed)
        XCTAssertThrowsError(try ModelOptions.applying(transitionPooling: "max", to: try ModelZoo.configuration(named: "resnet18")))
    }
}

import Autograd
import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// What a regression run reports.
public struct RegressionSummary: Sendable {
    public var outputDirectory: String
    public var epochs: Int
    public var globalStep: Int
    /// Mean squared error over the last epoch's training batches (before each update).
    public var trainMSE: Double
    /// Mean squared error over the test rows after the last epoch, in evaluation mode.
    public var testMSE: Double
    public var testRows: Int
    public var trainRows: Int
    public var parameterCount: Int
    public var seconds: Double
    public var peakResidentBytes: Int
    public var runtimePeakBytes: Int
    public var records: [MetricRecord]
}

/// Trains an MLP of the zoo with one output on a numeric table, mean squared error against its
/// last column (the d2l exercise: the DenseNet idea on an MLP for tabular regression).
///
/// Each epoch visits the training rows in a seeded shuffle (batches of `batchSize`, the last
/// one smaller), then measures the test rows in evaluation mode. The run's folder receives
/// `metrics.csv` (the columns of `MetricRecord`; `loss` is the MSE and `accuracy` is 0),
/// `metrics.json` (configuration, records, and `train_mse` / `test_mse` of the last epoch) and
/// `model.safetensors` (the weights, as `densenet train` writes them). No `--resume`: a run
/// takes seconds.
public final class RegressionRun {
    public let configuration: TrainingConfiguration
    public let modelConfiguration: ModelConfiguration
    public let outputDirectory: String
    public let trainSet: RegressionTable
    public let testSet: RegressionTable
    public weak var observer: TrainingObserver?

    /// `configuration.data` must be a table (`DatasetSpec.table`); its model an MLP with one output.
    public init(_ configuration: TrainingConfiguration, outputDirectory: String) throws {
        guard let trainPath = configuration.data.tablePath(.train), let testPath = configuration.data.tablePath(.test) else {
            throw TrainingError.invalidOption("--data", reason: "\(configuration.data.name) is an image data set: regression"
                                              + " reads tables (--data csv:TRAIN.csv --test-data csv:TEST.csv)")
        }
        try configuration.validate()
        self.configuration = configuration
        self.outputDirectory = outputDirectory
        modelConfiguration = configuration.model
        var train = try RegressionTable.read(trainPath)
        var test = try RegressionTable.read(testPath)
        if let l = configuration.limit { train = train.prefix(l) }
        if let l = configuration.testLimit { test = test.prefix(l) }
        let f = modelConfiguration.inputShape.channels
        for (table, path) in [(train, trainPath), (test, testPath)] where table.featureCount != f {
            throw TrainingError.invalidOption("--data", reason: "\(path) has \(table.featureCount) feature columns (and the target);"
                                              + " \(modelConfiguration.name) takes \(f): give --input \(table.featureCount)")
        }
        // Batch norm needs more than one value per channel; this loop keeps every batch, so a
        // batch size that leaves one row over is refused before the run (`BatchNormPlan`).
        let plan = try BatchNormPlan.check(model: modelConfiguration, exampleCount: train.rowCount,
                                           batchSize: configuration.batchSize)
        if plan.note != nil {
            throw TrainingError.batchNormNeedsMoreValues(
                option: "--batch", value: configuration.batchSize,
                reason: "the last batch of each epoch would hold \(train.rowCount % configuration.batchSize) of \(train.rowCount)"
                    + " rows, one value per channel for the batch norms of \(modelConfiguration.name)",
                hint: "choose a --batch that leaves 0 or at least 2 rows over, or a --limit")
        }
        trainSet = train
        testSet = test
    }

    /// The rows of epoch `epoch` (0-based) in their seeded order: a Fisher–Yates shuffle.
    public static func order(rows: Int, seed: UInt64, epoch: Int) -> [Int] {
        var g = SeededGenerator(seed: TrainingRun.streamSeed(seed, 3 + UInt64(epoch) &* 0x100))
        var order = Array(0..<rows)
        if rows > 1 {
            for i in stride(from: rows - 1, to: 0, by: -1) {
                let j = Int(g.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return order
    }

    public func run() throws -> RegressionSummary {
        let c = configuration
        let clockStart = Date()
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        Initialization.seed = TrainingRun.streamSeed(c.seed, 1)
        Autograd.dropoutSeed = TrainingRun.streamSeed(c.seed, 2)
        let model = try ModelFactory.build(modelConfiguration, policy: c.strategy)
        let optimizer = c.optimizer.make(model.parameters)
        let stepsPerEpoch = CheckedSize.ceilingDivision(trainSet.rowCount, by: c.batchSize)
        let trainer = Trainer(model: model, optimizer: optimizer, schedule: c.learningRateSchedule(stepsPerEpoch: stepsPerEpoch))
        let log = try MetricsLog(directory: outputDirectory)
        func elapsed() -> Double { Date().timeIntervalSince(clockStart) }

        var trainMSE = 0.0, testMSE = 0.0
        let reportEvery = max(1, c.epochs / 10)
        for epoch in 1...c.epochs {
            let order = RegressionRun.order(rows: trainSet.rowCount, seed: c.seed, epoch: epoch - 1)
            var sum = 0.0
            let epochStart = Date()
            for start in stride(from: 0, to: order.count, by: c.batchSize) {
                let rows = order[start..<min(start + c.batchSize, order.count)]
                let batch = trainSet.batch(rows)
                let m = trainer.regressionStep(features: batch.features, targets: batch.targets)
                guard m.loss.isFinite else {
                    throw TrainingError.invalidOption("--lr", reason: "the loss diverged (MSE \(m.loss) at epoch \(epoch), step"
                                                      + " \(trainer.globalStep)): use a smaller --lr, or --optimizer adam")
                }
                sum += Double(m.loss) * Double(m.examples)
                log.append(MetricRecord(phase: .train, epoch: epoch, step: trainer.globalStep, loss: Double(m.loss),
                                        accuracy: 0, learningRate: Double(m.learningRate),
                                        imagesPerSecond: Double(start + rows.count) / max(Date().timeIntervalSince(epochStart), 1e-9),
                                        elapsedSeconds: elapsed(), peakResidentBytes: ProcessProbe.peakResidentBytes,
                                        runtimePeakBytes: Memory.peak))
            }
            trainMSE = sum / Double(trainSet.rowCount)
            log.append(MetricRecord(phase: .trainEpoch, epoch: epoch, step: trainer.globalStep, loss: trainMSE, accuracy: 0,
                                    elapsedSeconds: elapsed(), peakResidentBytes: ProcessProbe.peakResidentBytes,
                                    runtimePeakBytes: Memory.peak))
            testMSE = Trainer.meanSquaredError(model, table: testSet, batchSize: c.evaluationBatchSize)
            log.append(MetricRecord(phase: .test, epoch: epoch, step: trainer.globalStep, loss: testMSE, accuracy: 0,
                                    elapsedSeconds: elapsed(), peakResidentBytes: ProcessProbe.peakResidentBytes,
                                    runtimePeakBytes: Memory.peak))
            if epoch % reportEvery == 0 || epoch == c.epochs {
                observer?.message("epoch \(epoch)/\(c.epochs): train MSE \(String(format: "%.4f", trainMSE))"
                                  + " | test MSE \(String(format: "%.4f", testMSE)) (\(testSet.rowCount) rows)")
            }
        }
        try TrainingCheckpoint.saveModel(model, to: (outputDirectory as NSString).appendingPathComponent(TrainingCheckpoint.modelFileName),
                                         metadata: ["epoch": String(c.epochs), "step": String(trainer.globalStep)])
        let summary = RegressionSummary(
            outputDirectory: outputDirectory, epochs: c.epochs, globalStep: trainer.globalStep, trainMSE: trainMSE,
            testMSE: testMSE, testRows: testSet.rowCount, trainRows: trainSet.rowCount, parameterCount: model.parameterCount,
            seconds: elapsed(), peakResidentBytes: ProcessProbe.peakResidentBytes, runtimePeakBytes: Memory.peak,
            records: log.records)
        try writeSummary(summary, log: log)
        return summary
    }

    /// `metrics.json`: the configuration, the run, every record, and the final MSEs.
    func writeSummary(_ s: RegressionSummary, log: MetricsLog) throws {
        struct Document: Encodable {
            var configuration: TrainingConfiguration
            var run: [String: String]
            var train_mse: Double
            var test_mse: Double
            var records: [MetricRecord]
        }
        let run = ["parameters": String(s.parameterCount), "threads": String(Parallel.threadCount),
                   "model": modelConfiguration.name, "input": String(modelConfiguration.inputShape.channels),
                   "train_rows": String(s.trainRows), "test_rows": String(s.testRows), "task": "regression",
                   "seconds": String(format: "%.3f", s.seconds)]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(Document(configuration: configuration, run: run, train_mse: s.trainMSE,
                                               test_mse: s.testMSE, records: s.records))
        try AtomicFile.write(to: log.jsonPath) { try $0.write(Array(json)) }
    }
}

extension Trainer {
    /// Forward, mean squared error against `targets`, backward and one update at the
    /// schedule's rate: the regression twin of `step(images:labels:)`. `features` is the MLP's
    /// input `(F, N)`; `correct` is 0.
    public func regressionStep(features: Tensor, targets: [Float]) -> StepMetrics {
        model.train()
        optimizer.zeroGradients()
        let output = model(Variable(features))
        let loss = Functional.meanSquaredError(output, targets: targets)
        loss.backward()
        let rate = schedule.rate(atStep: globalStep)
        optimizer.learningRate = rate
        optimizer.step()
        globalStep += 1
        return StepMetrics(loss: loss.value.pointer[0], correct: 0, examples: targets.count, learningRate: rate)
    }

    /// Mean squared error of `model` (one output) over every row of `table`, in evaluation
    /// mode, without a graph. The model is left in evaluation mode.
    public static func meanSquaredError(_ model: any Network, table: RegressionTable, batchSize: Int) -> Double {
        precondition(batchSize >= 1, "Trainer.meanSquaredError: batch \(batchSize)")
        model.eval()
        var sum = 0.0
        for start in stride(from: 0, to: table.rowCount, by: batchSize) {
            let batch = table.batch(start..<min(start + batchSize, table.rowCount))
            let prediction = logits(model, flatFeatures: batch.features)
            precondition(prediction.count == batch.targets.count,
                         "Trainer.meanSquaredError: \(prediction.shape) predictions for \(batch.targets.count) targets")
            let p = prediction.array
            for (a, t) in zip(p, batch.targets) { sum += Double(a - t) * Double(a - t) }
        }
        return sum / Double(max(table.rowCount, 1))
    }
}

import ArgumentParser
import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training

/// `densenet train`: trains a model of the zoo on Fashion-MNIST or CIFAR, with a progress bar,
/// metrics (CSV, JSON, SVG curves) and resumable checkpoints in the run's folder.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model of the zoo on Fashion-MNIST or CIFAR, or an MLP on a CSV table (regression).",
        discussion: """
        The data are resized to the model's input (1x96x96 for d2l, as in the textbook). A model \
        whose default input has 3 channels (densenet121: 3x224x224, densenet-bc-100-12: 3x32x32) \
        takes the data's channel count with its own height and width (Fashion-MNIST: 1x224x224, \
        1x32x32); --input CxHxW overrides. dense-mlp reads the flattened pixels.

        The run's folder (--out, default runs/MODEL-DATA-STRATEGY-TIME) receives metrics.csv \
        (every step; test loss and accuracy at each epoch's end), metrics.json, curves.svg, and \
        the checkpoint: model.safetensors (weights only, torchvision state_dict names; loads into \
        a torchvision DenseNet with load_state_dict(strict=True)) and training-state.safetensors \
        (optimizer and progress). Ctrl-C saves a checkpoint after the current step and stops; \
        --resume DIR continues the run exactly where it stopped (bit-identical losses at the \
        same --threads).

        --transition-pooling avg|max sets the pooling of a DenseNet's transitions (the d2l \
        exercise; avg is the paper's and torchvision's).

        Regression: --data csv:TRAIN.csv --test-data csv:TEST.csv trains an MLP of the zoo \
        (dense-mlp, the default, or mlp) with one output on a numeric table (a header row, the \
        target in the last column, the features in the others, used as they are: standardise \
        them first), mean squared error loss; --input defaults to the table's feature count. \
        The folder receives metrics.csv (loss = MSE, accuracy 0), metrics.json (with train_mse \
        and test_mse of the last epoch) and model.safetensors; no curves, no --resume.
        """)

    @Option(help: "Model: \(ModelZoo.names.joined(separator: ", ")), or densenet-bc-L-k.")
    var model: String?
    @Option(help: "fashion-mnist, cifar10:DIR (cifar-10-batches-bin), cifar100:DIR (cifar-100-binary) or csv:TRAIN.csv (regression).")
    var data: String?
    @Option(name: .customLong("test-data"), help: "With --data csv:…: the test table, csv:TEST.csv.")
    var testData: String?
    @Option(name: .customLong("data-dir"), help: "Where Fashion-MNIST is.")
    var dataDirectory: String = FashionMNIST.defaultDirectory
    @Option(help: "Total epochs (default 10). With --resume: the total to reach.")
    var epochs: Int?
    @Option(help: "Batch size (default 128).")
    var batch: Int?
    @Option(name: .customLong("eval-batch"), help: "Batch size of the test-set evaluation (default: --batch).")
    var evaluationBatch: Int?
    @Option(help: "sgd or adam (default sgd).")
    var optimizer: String?
    @Option(help: "Learning rate (default 0.1 for sgd, 0.001 for adam).")
    var lr: Float?
    @Option(help: "SGD momentum (default 0.9).")
    var momentum: Float?
    @Option(name: .customLong("weight-decay"), help: "L2 weight decay (default 1e-4).")
    var weightDecay: Float?
    @Flag(help: "Nesterov momentum (SGD).")
    var nesterov = false
    @Option(help: "Learning-rate schedule: constant, step (×gamma at the milestones) or cosine (default).")
    var schedule: String?
    @Option(name: .customLong("warmup-epochs"), help: "Linear warm-up length in epochs (default 0).")
    var warmupEpochs: Double?
    @Option(help: "Step schedule milestones, 0-based epochs, comma-separated (default: 50% and 75% of --epochs).")
    var milestones: String?
    @Option(help: "Step schedule factor (default 0.1).")
    var gamma: Float?
    @Option(help: "Seed of the weights, shuffles, augmentation and dropout (default 0).")
    var seed: UInt64?
    @Option(help: "Threads (default: all cores).")
    var threads: Int?
    @Option(help: "Use only the first N training examples (quick runs).")
    var limit: Int?
    @Option(name: .customLong("test-limit"), help: "Use only the first N test examples (default: --limit).")
    var testLimit: Int?
    @Option(name: .customLong("max-memory"), help: "Refuse to start when the planner predicts a larger peak (bytes; K, M, G suffixes).")
    var maxMemory: String?
    @Option(help: "Memory strategy: naive, checkpoint, shared (default) or minimal.")
    var strategy: String?
    @Option(help: "Classifier outputs (default: the dataset's classes).")
    var classes: Int?
    @Option(help: "Model input CxHxW (default: the model's H×W with the data's channels).")
    var input: String?
    @Option(name: .customLong("transition-pooling"), help: "DenseNet transition pooling: avg (default) or max.")
    var transitionPooling: String?
    @Flag(name: .customLong("no-augment"), help: "No CIFAR crop-and-flip augmentation.")
    var noAugment = false
    @Option(help: "The run's folder (default runs/MODEL-DATA-STRATEGY-TIME).")
    var out: String?
    @Option(help: "Continue the run in this folder (or of this checkpoint file).")
    var resume: String?
    @Option(name: .customLong("stop-after-epoch"), help: "Stop after this epoch as if interrupted (resume later).")
    var stopAfterEpoch: Int?

    func run() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            Parallel.threadCount = threads
        }
        if let data, data.lowercased().hasPrefix("csv:") { return try runRegression(trainPath: String(data.dropFirst(4))) }
        if testData != nil {
            throw TrainingError.invalidOption("--test-data", reason: "only for tables (--data csv:TRAIN.csv); image data sets bring their test split")
        }
        let start: TrainingRun.Start
        if let resume {
            let dataSpec = try data.map { try DatasetSpec.parse($0, dataDirectory: dataDirectory) }
            start = .resume(path: resume, epochs: epochs, data: dataSpec)
        } else {
            start = .fresh(try freshConfiguration())
        }
        let run = try TrainingRun(start, outputDirectory: out ?? (resume == nil ? defaultFolder() : nil))
        if resume != nil { try checkResumeOptions(run.configuration) }

        if let maxMemory {
            let limit = try Train.parseBytes(maxMemory)
            // The planner replays a training step's allocations; the model is built only in run().
            let o = run.configuration.optimizer
            let planned: PlannedOptimizer = o.kind == .adam ? .adam : (o.momentum > 0 ? .sgdMomentum : .sgd)
            let predicted = try MemoryPlanner.predictedPeakBytes(model: run.modelConfiguration,
                                                                 batch: run.configuration.batchSize,
                                                                 policy: run.configuration.strategy, optimizer: planned)
            guard predicted <= limit else {
                throw TrainingError.exceedsMemoryLimit(predictedBytes: predicted, limitBytes: limit)
            }
        }

        let c = run.configuration
        let progress = ConsoleProgress()
        run.observer = progress
        run.stopAfterEpoch = stopAfterEpoch
        signal(SIGINT) { _ in
            if TrainingRun.stopRequested { _exit(130) }
            TrainingRun.requestStop()
        }
        let m = run.modelConfiguration
        progress.message("run folder: \(run.outputDirectory)")
        progress.message("\(m.name) (input \(m.inputShape), \(m.outputCount) classes), strategy \(c.strategy.name),"
                         + " \(c.data.name): \(min(run.trainSet.count, c.limit ?? .max)) training / \(min(run.testSet.count, c.testLimit ?? .max)) test images,"
                         + " batch \(c.batchSize), \(c.optimizer.kind.rawValue) lr \(c.optimizer.learningRate) (\(c.schedule.rawValue)),"
                         + " \(c.epochs) epoch(s), \(Parallel.threadCount) thread(s)")
        let summary = try run.run()
        var line = "\(summary.stoppedEarly ? "stopped" : "done"): \(summary.epochsCompleted)/\(c.epochs) epoch(s), \(summary.globalStep) steps in \(ConsoleProgress.clock(summary.seconds))"
        if let test = summary.lastTest {
            line += ", test accuracy \(String(format: "%.2f%%", 100 * test.accuracy)), test loss \(String(format: "%.4f", test.loss))"
        }
        line += ", \(String(format: "%.1f", summary.imagesPerSecond)) img/s (last epoch),"
            + " peak RSS \(ConsoleProgress.bytes(summary.peakResidentBytes)), tensor peak \(ConsoleProgress.bytes(summary.runtimePeakBytes))"
        progress.message(line)
        progress.message("checkpoint: \(run.outputDirectory)/\(TrainingCheckpoint.modelFileName), metrics: \(run.outputDirectory)/\(MetricsLog.csvFileName), curves: \(run.outputDirectory)/\(MetricsLog.plotFileName)")
        // Interrupted (Ctrl-C): the checkpoint is saved, but the run is not finished.
        if TrainingRun.stopRequested { throw ExitCode(130) }
    }

    func freshConfiguration() throws -> TrainingConfiguration {
        let spec = try DatasetSpec.parse(data ?? "fashion-mnist", dataDirectory: dataDirectory)
        // The test split is enough to know the data's channels, size and classes.
        let probe = try spec.load(.test)
        let resolved = try ModelInput.resolveModel(named: model ?? "d2l", classes: classes, input: input,
                                                   dataset: probe, datasetName: spec.name)
        let modelConfiguration = try ModelOptions.applying(transitionPooling: transitionPooling, to: resolved)
        let kind = try Train.choice(optimizer ?? "sgd", OptimizerSettings.Kind.self, option: "--optimizer")
        let settings = OptimizerSettings(kind: kind, learningRate: lr ?? (kind == .sgd ? 0.1 : 1e-3),
                                         momentum: momentum ?? (kind == .sgd ? 0.9 : 0), weightDecay: weightDecay ?? 1e-4,
                                         nesterov: nesterov)
        return TrainingConfiguration(
            model: ModelDescription(modelConfiguration),
            strategy: try Train.policy(strategy ?? "shared"),
            data: spec, epochs: epochs ?? 10, batchSize: batch ?? 128, evaluationBatchSize: evaluationBatch,
            optimizer: settings,
            schedule: try Train.choice(schedule ?? "cosine", LearningRateSchedule.Kind.self, option: "--schedule"),
            warmupEpochs: warmupEpochs ?? 0, milestones: try milestones.map(Train.parseMilestones), gamma: gamma ?? 0.1,
            seed: seed ?? 0, limit: limit, testLimit: testLimit ?? limit, augment: !noAugment)
    }

    /// A resumed run keeps its configuration: an option that says otherwise is an error.
    func checkResumeOptions(_ saved: TrainingConfiguration) throws {
        var given: [(String, String?, String)] = [
            ("--model", model, saved.model.name),
            ("--strategy", strategy, saved.strategy.name),
            ("--batch", batch.map(String.init), String(saved.batchSize)),
            ("--optimizer", optimizer, saved.optimizer.kind.rawValue),
            ("--lr", lr.map { "\($0)" }, "\(saved.optimizer.learningRate)"),
            ("--momentum", momentum.map { "\($0)" }, "\(saved.optimizer.momentum)"),
            ("--weight-decay", weightDecay.map { "\($0)" }, "\(saved.optimizer.weightDecay)"),
            ("--schedule", schedule, saved.schedule.rawValue),
            ("--warmup-epochs", warmupEpochs.map { "\($0)" }, "\(saved.warmupEpochs)"),
            ("--gamma", gamma.map { "\($0)" }, "\(saved.gamma)"),
            ("--seed", seed.map(String.init), String(saved.seed)),
            ("--limit", limit.map(String.init), saved.limit.map(String.init) ?? "none"),
        ]
        if nesterov { given.append(("--nesterov", "true", "\(saved.optimizer.nesterov)")) }
        if let transitionPooling, case .denseNet(let f) = saved.model {
            let wanted = try ModelOptions.transitionPooling(transitionPooling).rawValue
            given.append(("--transition-pooling", wanted, f.transitionPooling))
        }
        if noAugment { given.append(("--no-augment", "false", "\(saved.augment)")) }
        for (option, value, savedValue) in given {
            if let value, value.lowercased() != savedValue.lowercased() {
                throw TrainingError.resumeConflict(option: option, saved: savedValue, given: value)
            }
        }
        if classes != nil || input != nil || milestones != nil || testLimit != nil || evaluationBatch != nil {
            throw TrainingError.invalidOption("--resume", reason: "--classes, --input, --milestones, --test-limit and --eval-batch"
                                              + " cannot change in a resumed run")
        }
    }

    /// `--data csv:TRAIN.csv --test-data csv:TEST.csv`: an MLP with one output, mean squared error.
    func runRegression(trainPath: String) throws {
        guard resume == nil, stopAfterEpoch == nil else {
            throw TrainingError.invalidOption(resume != nil ? "--resume" : "--stop-after-epoch",
                                              reason: "regression runs (csv data) take seconds and are not resumable")
        }
        guard let testData, testData.lowercased().hasPrefix("csv:"), testData.count > 4 else {
            throw TrainingError.invalidOption("--test-data", reason: "csv training data needs its test table: --test-data csv:TEST.csv")
        }
        guard !trainPath.isEmpty else { throw TrainingError.invalidOption("--data", reason: "csv: needs a path, e.g. csv:train.csv") }
        let probe = try RegressionTable.read(trainPath)
        let modelConfiguration = try ModelOptions.applying(
            transitionPooling: transitionPooling,
            to: try ModelZoo.configuration(named: model ?? "dense-mlp", classes: classes ?? 1, input: input ?? "\(probe.featureCount)"))
        let kind = try Train.choice(optimizer ?? "sgd", OptimizerSettings.Kind.self, option: "--optimizer")
        let settings = OptimizerSettings(kind: kind, learningRate: lr ?? (kind == .sgd ? 0.1 : 1e-3),
                                         momentum: momentum ?? (kind == .sgd ? 0.9 : 0), weightDecay: weightDecay ?? 1e-4,
                                         nesterov: nesterov)
        let c = RegressionConfiguration(
            model: ModelDescription(modelConfiguration),
            strategy: try Train.policy(strategy ?? "shared"),
            trainPath: trainPath, testPath: String(testData.dropFirst(4)), epochs: epochs ?? 10, batchSize: batch ?? 128,
            evaluationBatchSize: evaluationBatch, optimizer: settings,
            schedule: try Train.choice(schedule ?? "cosine", LearningRateSchedule.Kind.self, option: "--schedule"),
            warmupEpochs: warmupEpochs ?? 0, milestones: try milestones.map(Train.parseMilestones), gamma: gamma ?? 0.1,
            seed: seed ?? 0, limit: limit, testLimit: testLimit ?? limit)
        let run = try RegressionRun(c, outputDirectory: out ?? defaultFolder())
        if let maxMemory {
            let limit = try Train.parseBytes(maxMemory)
            guard case .denseMLP(let m) = modelConfiguration, m.denseConnections else {
                throw TrainingError.invalidOption("--max-memory", reason: "the memory planner does not model \(modelConfiguration.name)"
                                                  + " (a plain MLP); leave --max-memory out")
            }
            let planned: PlannedOptimizer = kind == .adam ? .adam : (settings.momentum > 0 ? .sgdMomentum : .sgd)
            let predicted = try MemoryPlanner.predictedPeakBytes(model: modelConfiguration, batch: c.batchSize,
                                                                 policy: c.strategy, optimizer: planned)
            guard predicted <= limit else { throw TrainingError.exceedsMemoryLimit(predictedBytes: predicted, limitBytes: limit) }
        }
        let progress = ConsoleProgress()
        run.observer = progress
        progress.message("run folder: \(run.outputDirectory)")
        progress.message("\(modelConfiguration.name) (\(modelConfiguration.inputShape.channels) features, 1 output), strategy"
                         + " \(c.strategy.name), regression on \(trainPath): \(run.trainSet.rowCount) training / \(run.testSet.rowCount)"
                         + " test rows, batch \(c.batchSize), \(settings.kind.rawValue) lr \(settings.learningRate) (\(c.schedule.rawValue)),"
                         + " \(c.epochs) epoch(s), \(Parallel.threadCount) thread(s)")
        let summary = try run.run()
        progress.message("done: \(summary.epochs) epoch(s), \(summary.globalStep) steps in \(ConsoleProgress.clock(summary.seconds)),"
                         + " \(summary.parameterCount) parameters, train MSE \(String(format: "%.4f", summary.trainMSE)),"
                         + " test MSE \(String(format: "%.4f", summary.testMSE)),"
                         + " peak RSS \(ConsoleProgress.bytes(summary.peakResidentBytes)), tensor peak \(ConsoleProgress.bytes(summary.runtimePeakBytes))")
        progress.message("model: \(run.outputDirectory)/\(TrainingCheckpoint.modelFileName), metrics: \(run.outputDirectory)/\(MetricsLog.jsonFileName)")
    }

    func defaultFolder() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let name = [model ?? "d2l", (data ?? "fashion-mnist").split(separator: ":").first.map(String.init) ?? "data",
                    strategy ?? "shared", formatter.string(from: Date())].joined(separator: "-")
        return "runs/" + name
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, _ type: T.Type, option: String) throws -> T
    where T.RawValue == String {
        guard let value = T(rawValue: text.lowercased()) else {
            throw TrainingError.invalidOption(option, reason: "'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    static func policy(_ text: String) throws -> MemoryPolicy {
        do { return try MemoryPolicy(named: text) } catch { throw TrainingError.invalidOption("--strategy", reason: "\(error)") }
    }

    static func parseMilestones(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw TrainingError.invalidOption("--milestones", reason: "'\(text)' is not a comma-separated list of epochs, e.g. 150,225")
        }
        return parts.map { $0! }
    }

    /// "2G", "512M", "1.5GiB", "1000000".
    static func parseBytes(_ text: String) throws -> Int {
        let t = text.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var number = Substring(t)
        var scale = 1.0
        if let last = t.last, let u = units[last] { scale = u; number = t.dropLast() }
        guard let v = Double(number), v > 0 else {
            throw TrainingError.invalidOption("--max-memory", reason: "'\(text)' is not a size such as 6G, 512M or 1000000")
        }
        return Int(v * scale)
    }
}

import ArgumentParser
import CommandLineOptions
import DataParallel
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

        Without --model: d2l (dense-mlp for csv data). The run's folder (--out, default \
        runs/MODEL-DATA-STRATEGY-TIME) receives metrics.csv \
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

        Data-parallel: `mpirun -np N densenet train ...` trains one model over N processes. \
        --batch stays the global batch (each rank takes its slice; every batch, the last one of \
        an epoch included, needs at least N examples); batch norm is synchronised over the \
        ranks (--no-sync-batchnorm: per-rank statistics); rank 0 alone prints and writes the \
        run's folder; --resume may use another number of ranks (every rank reads the folder). \
        Ctrl-C on mpirun ends the job at once (Open MPI's mpirun kills the ranks), leaving the \
        last epoch's checkpoint: stop a run for later with --stop-after-step or --stop-after-epoch.

        Fine-tuning: --init-from densenet121.safetensors starts a torchvision-shaped DenseNet \
        (densenet121, densenet161, densenet169 or densenet201, at any --input 3xHxW) from \
        ImageNet weights, written in Python \
        with safetensors.torch.save_file(model.state_dict(), "densenet121.safetensors") (the \
        num_batches_tracked counters are skipped). A class count other than the file's (e.g. 5 \
        classes of --data folder:photos) replaces the classifier with a new one, and says so; \
        --freeze features then trains that classifier alone (the features run without a graph: \
        a step costs little more than the forward pass). --resume keeps both.

        --max-memory SIZE (e.g. 6G) refuses to start when the planner predicts a larger peak of \
        tensor memory for one training step (as densenet summary prints it) with this model, \
        batch, strategy, optimizer and --threads.
        """)

    @OptionGroup var modelOptions: ModelInputOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: "Memory strategy: naive, checkpoint, shared (default) or minimal.")
    var strategy: String?
    @Option(help: "Total epochs (default 10). With --resume: the total to reach.")
    var epochs: Int?
    @Option(help: "Batch size (default 128).")
    var batch: Int?
    @Option(name: .customLong("eval-batch"), help: "Batch size of the test-set evaluation (default: --batch).")
    var evaluationBatch: Int?
    @OptionGroup var optimizerOptions: OptimizerOptions
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
    @Flag(name: .customLong("no-augment"), help: "No CIFAR crop-and-flip augmentation.")
    var noAugment = false
    @OptionGroup var threadsOptions: ThreadsOptions
    @OptionGroup var budget: MemoryBudgetOptions
    @OptionGroup var output: OutputFolderOptions
    @Option(help: "Continue the run in this folder (or of this checkpoint file).")
    var resume: String?
    @Option(name: .customLong("stop-after-epoch"), help: "Stop after this epoch as if interrupted (resume later).")
    var stopAfterEpoch: Int?
    @Option(name: .customLong("stop-after-step"), help: "Stop after this global step as if interrupted (resume later).")
    var stopAfterStep: Int?
    @Option(help: "Dropout rate after each dense layer of a DenseNet (default: the model's, 0 for the zoo's).")
    var dropout: Double?
    @Flag(name: .customLong("no-sync-batchnorm"), help: "Under mpirun: per-rank batch statistics instead of the global batch's.")
    var noSyncBatchNorm = false
    @Option(name: .customLong("init-from"), help: ArgumentHelp(
        "Start from these weights: a PyTorch state_dict with torchvision names, saved as safetensors.",
        discussion: "A different class count replaces the classifier (the log says so); any other mismatch is an error naming the tensors."))
    var initFrom: String?
    @Option(help: "Parameters to keep fixed: none (default) or features (train the classifier only; the features' batch norm stays in evaluation mode).")
    var freeze: String?
    @Option(name: .customLong("bucket-cap-mb"), help: "Under mpirun: gradient bucket size in MiB (default 25, as PyTorch DDP).")
    var bucketCapMiB: Double?

    func validate() throws {
        if let stopAfterEpoch, stopAfterEpoch < 1 {
            throw ValidationError("--stop-after-epoch must be at least 1 (an epoch to stop after), got \(stopAfterEpoch)")
        }
    }

    func run() throws {
        threadsOptions.apply()
        if let out = output.out { try OutputLocation.checkFolder(out, option: "--out") }
        try Communicator.withWorld { try run(communicator: $0) }
    }

    func run(communicator: Communicator) throws {
        if let resume {
            let data = try dataOptions.givenSpec()
            if let data, data.isTable {
                throw TrainingError.invalidOption("--resume", reason: "regression runs (csv data) take seconds and are not resumable")
            }
            let start = TrainingRun.Start.resume(path: resume, epochs: epochs, data: data)
            let run = try TrainingRun(start, outputDirectory: output.out)
            try checkResumeOptions(run.configuration, model: run.modelConfiguration)
            try checkMemory(run.configuration, model: run.modelConfiguration, ranks: communicator.size)
            return try train(run, communicator: communicator)
        }
        let c = try configuration()
        // Every rank must write into the same folder: a default folder is named by the time.
        if communicator.size > 1 && output.out == nil {
            throw TrainingError.invalidOption("--out", reason: "a run over \(communicator.size) ranks needs an explicit --out folder")
        }
        let folder = try output.checkedFolder { defaultFolder(c) }
        if c.data.isTable {
            guard communicator.size == 1 else {
                throw TrainingError.invalidOption("mpirun", reason: "regression runs (csv data) train in one process")
            }
            guard stopAfterStep == nil else {
                throw TrainingError.invalidOption("--stop-after-step", reason: "regression runs (csv data) take seconds and are not resumable")
            }
            guard stopAfterEpoch == nil else {
                throw TrainingError.invalidOption("--stop-after-epoch", reason: "regression runs (csv data) take seconds and are not resumable")
            }
            let run = try RegressionRun(c, outputDirectory: folder)
            try checkMemory(c, model: run.modelConfiguration, ranks: communicator.size)
            return try train(run)
        }
        let run = try TrainingRun(.fresh(c), outputDirectory: folder)
        try checkMemory(c, model: run.modelConfiguration, ranks: communicator.size)
        try train(run, communicator: communicator)
    }

    /// The run the options describe, image or table data alike.
    func configuration() throws -> TrainingConfiguration {
        let data = try dataOptions.spec()
        var model = try modelOptions.configuration(for: data)
        if let dropout {
            guard case .denseNet(var d) = model else {
                throw TrainingError.invalidOption("--dropout", reason: "\(model.name) is not a DenseNet: only dense layers take dropout here")
            }
            d.dropRate = dropout
            model = .denseNet(d)
            try model.validate()
        }
        return TrainingConfiguration(
            model: model,
            strategy: try MemoryPrediction.strategy(named: strategy ?? "shared"),
            data: data, epochs: epochs ?? 10, batchSize: batch ?? 128, evaluationBatchSize: evaluationBatch,
            optimizer: try optimizerOptions.settings(),
            schedule: try Train.choice(schedule ?? "cosine", LearningRateSchedule.Kind.self, option: "--schedule"),
            warmupEpochs: warmupEpochs ?? 0, milestones: try milestones.map(Train.parseMilestones), gamma: gamma ?? 0.1,
            seed: seed ?? 0, limit: dataOptions.limit, testLimit: dataOptions.testExamples, augment: !noAugment,
            initFrom: initFrom, freeze: try Train.choice(freeze ?? "none", FineTuning.Freeze.self, option: "--freeze"))
    }

    /// `--max-memory`: the planner's peak for the run's step against the budget, before any tensor
    /// exists; over several ranks, for a rank's largest slice of the global batch, plus the
    /// gradient buckets (one more copy of the gradients, GradientBuckets.swift).
    func checkMemory(_ c: TrainingConfiguration, model: ModelConfiguration, ranks: Int = 1) throws {
        guard budget.maxMemory != nil else { return }
        let batch = (c.batchSize + ranks - 1) / ranks
        var peak = try MemoryPrediction.plan(model, batch: batch, strategy: c.strategy, optimizer: c.optimizer).peakBytes
        if ranks > 1 { peak += try Architecture(model).trainableParameters * MemoryLayout<Float>.stride }
        try budget.check(peak)
    }

    func train(_ run: TrainingRun, communicator: Communicator) throws {
        let c = run.configuration
        let progress = ConsoleProgress()
        // Rank 0 alone prints (and writes the folder); the others train silently.
        let isRoot = communicator.rank == 0
        if isRoot { run.observer = progress }
        run.communicator = communicator
        run.synchronizeBatchNorm = !noSyncBatchNorm
        if let bucketCapMiB {
            guard bucketCapMiB > 0, bucketCapMiB <= 1_048_576 else {
                throw TrainingError.invalidOption("--bucket-cap-mb", reason: "\(bucketCapMiB) must be a positive size in MiB, e.g. 25")
            }
            run.bucketCapBytes = max(1, Int(bucketCapMiB * 1_048_576))
        }
        run.stopAfterEpoch = stopAfterEpoch
        run.stopAfterStep = stopAfterStep
        signal(SIGINT) { _ in
            if TrainingRun.stopRequested { _exit(130) }
            TrainingRun.requestStop()
        }
        let m = run.modelConfiguration
        let print = isRoot ? { progress.message($0) } : { (_: String) in }
        print("run folder: \(run.outputDirectory)")
        print("\(m.name) (input \(m.inputShape), \(m.outputCount) classes), strategy \(c.strategy.name),"
                         + " \(c.data.name): \(min(run.trainSet.count, c.limit ?? .max)) training / \(min(run.testSet.count, c.testLimit ?? .max)) test images,"
                         + (c.initFrom.map { " from \($0)," } ?? "")
                         + (c.frozenPart == .none ? "" : " \(c.frozenPart.rawValue) frozen,")
                         + " batch \(c.batchSize), \(c.optimizer.kind.rawValue) lr \(c.optimizer.learningRate) (\(c.schedule.rawValue)),"
                         + " \(c.epochs) epoch(s), \(Parallel.threadCount) thread(s)"
                         + (communicator.size > 1 ? " per rank, \(communicator.size) ranks (batch norm \(noSyncBatchNorm ? "per rank" : "synchronised"))" : ""))
        let summary = try run.run()
        guard isRoot else {
            if TrainingRun.stopRequested { throw ExitCode(130) }
            return
        }
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

    /// `--data csv:TRAIN.csv --test-data csv:TEST.csv`: an MLP with one output, mean squared error.
    func train(_ run: RegressionRun) throws {
        let c = run.configuration, m = run.modelConfiguration
        let progress = ConsoleProgress()
        run.observer = progress
        progress.message("run folder: \(run.outputDirectory)")
        progress.message("\(m.name) (\(m.inputShape.channels) features, 1 output), strategy"
                         + " \(c.strategy.name), regression on \(c.data.tablePath(.train) ?? ""): \(run.trainSet.rowCount) training /"
                         + " \(run.testSet.rowCount) test rows, batch \(c.batchSize), \(c.optimizer.kind.rawValue) lr"
                         + " \(c.optimizer.learningRate) (\(c.schedule.rawValue)), \(c.epochs) epoch(s), \(Parallel.threadCount) thread(s)")
        let summary = try run.run()
        progress.message("done: \(summary.epochs) epoch(s), \(summary.globalStep) steps in \(ConsoleProgress.clock(summary.seconds)),"
                         + " \(summary.parameterCount) parameters, train MSE \(String(format: "%.4f", summary.trainMSE)),"
                         + " test MSE \(String(format: "%.4f", summary.testMSE)),"
                         + " peak RSS \(ConsoleProgress.bytes(summary.peakResidentBytes)), tensor peak \(ConsoleProgress.bytes(summary.runtimePeakBytes))")
        progress.message("model: \(run.outputDirectory)/\(TrainingCheckpoint.modelFileName), metrics: \(run.outputDirectory)/\(MetricsLog.jsonFileName)")
    }

    /// A resumed run keeps its configuration: an option that says otherwise is an error.
    func checkResumeOptions(_ saved: TrainingConfiguration, model: ModelConfiguration) throws {
        try modelOptions.checkAgrees(with: model)
        let o = optimizerOptions
        var given: [(String, String?, String)] = [
            ("--strategy", strategy, saved.strategy.name),
            ("--batch", batch.map(String.init), String(saved.batchSize)),
            ("--optimizer", try o.optimizer.map { _ in try o.kind().rawValue }, saved.optimizer.kind.rawValue),
            ("--lr", o.lr.map { "\($0)" }, "\(saved.optimizer.learningRate)"),
            ("--momentum", o.momentum.map { "\($0)" }, "\(saved.optimizer.momentum)"),
            ("--weight-decay", o.weightDecay.map { "\($0)" }, "\(saved.optimizer.weightDecay)"),
            ("--schedule", schedule, saved.schedule.rawValue),
            ("--warmup-epochs", warmupEpochs.map { "\($0)" }, "\(saved.warmupEpochs)"),
            ("--gamma", gamma.map { "\($0)" }, "\(saved.gamma)"),
            ("--seed", seed.map(String.init), String(saved.seed)),
            ("--limit", dataOptions.limit.map(String.init), saved.limit.map(String.init) ?? "none"),
        ]
        given.append(("--freeze", freeze, saved.frozenPart.rawValue))
        if initFrom != nil {
            throw TrainingError.invalidOption("--init-from", reason: "a resumed run continues from its own checkpoint"
                                              + (saved.initFrom.map { " (it started from \($0))" } ?? "")
                                              + "; --init-from starts a new run")
        }
        if o.nesterov { given.append(("--nesterov", "true", "\(saved.optimizer.nesterov)")) }
        if noAugment { given.append(("--no-augment", "false", "\(saved.augment)")) }
        for (option, value, savedValue) in given {
            if let value, value.lowercased() != savedValue.lowercased() {
                throw TrainingError.resumeConflict(option: option, saved: savedValue, given: value)
            }
        }
        let m = modelOptions
        if m.classes != nil || m.input != nil || milestones != nil || dataOptions.testLimit != nil || evaluationBatch != nil {
            throw TrainingError.invalidOption("--resume", reason: "--classes, --input, --milestones, --test-limit and --eval-batch"
                                              + " cannot change in a resumed run")
        }
    }

    func defaultFolder(_ c: TrainingConfiguration) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let name = [c.model.name, c.data.name, c.strategy.name, formatter.string(from: Date())].joined(separator: "-")
        return "runs/" + name
    }

    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, _ type: T.Type, option: String) throws -> T
    where T.RawValue == String {
        guard let value = T(rawValue: text.lowercased()) else {
            throw TrainingError.invalidOption(option, reason: "'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    static func parseMilestones(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw TrainingError.invalidOption("--milestones", reason: "'\(text)' is not a comma-separated list of epochs, e.g. 150,225")
        }
        return parts.map { $0! }
    }
}

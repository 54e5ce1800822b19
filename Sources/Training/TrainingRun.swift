import Autograd
import Checkpoints
import DataParallel
import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// What a finished (or stopped) run reports.
public struct TrainingSummary: Sendable {
    public var outputDirectory: String
    /// Epochs completed in total (including those before a resume).
    public var epochsCompleted: Int
    public var globalStep: Int
    /// True when the run stopped early (`stopAfterEpoch`, `stopAfterStep` or an interrupt).
    public var stoppedEarly: Bool
    public var lastTest: EvaluationResult?
    /// Seconds of this invocation.
    public var seconds: Double
    /// Training images per second of the last epoch trained in this invocation.
    public var imagesPerSecond: Double
    public var peakResidentBytes: Int
    public var runtimePeakBytes: Int
    public var records: [MetricRecord]
}

/// A whole training run: builds the model, trains epoch after epoch with a test evaluation
/// at each end, logs metrics, and checkpoints to its folder; or continues one from its
/// checkpoint, reproducing the uninterrupted run's losses bit for bit (same thread count).
///
/// `init` reads the datasets and resolves the configuration but allocates no tensor, so a
/// memory check can come between it and `run()`.
public final class TrainingRun {
    public enum Start {
        case fresh(TrainingConfiguration)
        /// A run folder or one of its checkpoint files; `epochs` raises the total (the schedule
        /// is then recomputed for it); `data` points at the same dataset in another place.
        case resume(path: String, epochs: Int?, data: DatasetSpec?)
    }

    public let configuration: TrainingConfiguration
    public let modelConfiguration: ModelConfiguration
    public let outputDirectory: String
    public let trainSet: ImageDataset
    public let testSet: ImageDataset
    /// Set for a resumed run.
    public let resumed: (model: String, state: String, progress: TrainingProgress)?
    /// What `--resume` had to skip (damaged newer checkpoints) and what `run()` cleaned up
    /// (temporaries of an interrupted save); `run()` reports them to the observer first.
    public private(set) var notes: [String] = []
    /// Newer checkpoints `--resume` skipped as damaged; `run()` sets them aside (renamed to
    /// `checkpoints/damaged-NAME`, kept for inspection) so that later saves retire them, not
    /// the sound ones.
    private var damagedCheckpoints: [TrainingCheckpoint.Location] = []
    /// The training loader's handling of batch norm's minimum batch, decided in `init`.
    public let batchNormPlan: BatchNormPlan
    public var stopAfterEpoch: Int?
    public var stopAfterStep: Int?
    public weak var observer: TrainingObserver?
    /// The ranks this run trains over: `Communicator.world()` under `mpirun -np N` (N > 1 trains
    /// data-parallel, DataParallelTraining.swift; only rank 0 writes files), one process by default.
    public var communicator: Communicator = .singleProcess()
    /// Synchronised batch norm over the ranks (global batch statistics); false gives per-rank
    /// statistics, as plain DDP. Not saved with the checkpoint. No effect on one process.
    public var synchronizeBatchNorm = true
    /// The gradient bucket size of a run over several ranks (GradientBuckets).
    public var bucketCapBytes = GradientBuckets.defaultCapBytes
    /// Seconds spent waiting for gradient reductions in the last step (0 for one process).
    public private(set) var lastCommunicationWaitSeconds = 0.0

    nonisolated(unsafe) private static var stopFlag: Int32 = 0
    /// Asks the running loop to save a checkpoint after the current step and stop (SIGINT).
    public static func requestStop() { stopFlag = 1 }
    public static var stopRequested: Bool { stopFlag != 0 }

    public init(_ start: Start, outputDirectory: String? = nil) throws {
        switch start {
        case .fresh(let c):
            try c.validate()
            configuration = c
            resumed = nil
            guard let outputDirectory else {
                throw TrainingError.invalidOption("--out", reason: "a new run needs an output folder")
            }
            self.outputDirectory = outputDirectory
            // A missing or damaged --init-from file fails now, before the data are read; its
            // tensors are matched against the model in `run()`.
            if let source = c.initFrom { _ = try Safetensors.readHeader(source) }
        case .resume(let path, let epochs, let data):
            let (files, savedProgress, skipped) = try TrainingRun.lastCompleteCheckpoint(path)
            notes = skipped
            damagedCheckpoints = ((try? TrainingCheckpoint.resumeCandidates(path)) ?? []).filter { $0.sequence > files.sequence }
            var progress = savedProgress
            if let epochs { progress.configuration.epochs = epochs }
            if let data {
                guard data.name == progress.configuration.data.name else {
                    throw TrainingError.resumeConflict(option: "--data", saved: progress.configuration.data.name, given: data.name)
                }
                progress.configuration.data = data
            }
            try progress.configuration.validate()
            guard progress.loader.epoch < progress.configuration.epochs else {
                throw TrainingError.alreadyFinished(epochs: progress.loader.epoch, path: path)
            }
            configuration = progress.configuration
            resumed = (files.model, files.state, progress)
            self.outputDirectory = outputDirectory ?? files.run
        }
        modelConfiguration = configuration.model
        trainSet = try configuration.data.load(.train)
        testSet = try configuration.data.load(.test)
        if let resumed { try resumed.progress.validate(path: resumed.state, trainingExamples: trainSet.count) }
        batchNormPlan = try BatchNormPlan.check(model: modelConfiguration,
                                                exampleCount: min(trainSet.count, configuration.limit ?? trainSet.count),
                                                batchSize: configuration.batchSize)
        if let note = batchNormPlan.note { notes.append(note) }
        for (set, split) in [(trainSet, "training"), (testSet, "test")] where set.classCount > modelConfiguration.outputCount {
            throw TrainingError.tooFewClasses(classes: modelConfiguration.outputCount,
                                              dataset: "\(configuration.data.name) (\(split))", datasetClasses: set.classCount)
        }
    }

    /// The newest checkpoint of `path` whose files and progress are sound, and a note for each
    /// newer one skipped (damaged, torn, lying): `--resume` falls back to the last complete
    /// checkpoint and says so. With a single candidate its own error is thrown.
    static func lastCompleteCheckpoint(_ path: String) throws
        -> (location: TrainingCheckpoint.Location, progress: TrainingProgress, notes: [String]) {
        let candidates = try TrainingCheckpoint.resumeCandidates(path)
        var notes = [String]()
        var firstError: Error? = nil
        for candidate in candidates {
            do {
                let progress = try TrainingCheckpoint.readProgress(model: candidate.model, state: candidate.state)
                try progress.validate(path: candidate.state)
                if !notes.isEmpty {
                    notes.append("resuming from the last complete checkpoint, \(candidate.name) (step \(progress.globalStep))")
                }
                return (candidate, progress, notes)
            } catch {
                firstError = firstError ?? error
                notes.append("skipping checkpoint \(candidate.name): \(error)")
            }
        }
        if candidates.count == 1, let firstError { throw firstError }
        throw TrainingError.noUsableCheckpoint(path: path, reasons: notes)
    }

    /// A well-mixed seed for stream `stream` of the run's seed.
    static func streamSeed(_ seed: UInt64, _ stream: UInt64) -> UInt64 {
        var g = SeededGenerator(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        return g.next()
    }

    // MARK: The loop

    public func run() throws -> TrainingSummary {
        TrainingRun.stopFlag = 0
        let c = configuration
        let clockStart = Date()
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        for leftover in TrainingCheckpoint.removeInterruptedSaves(inRun: outputDirectory) {
            notes.append("removed \(leftover), left by an interrupted save")
        }
        for damaged in damagedCheckpoints {
            if let aside = TrainingCheckpoint.setAside(damaged) { notes.append("kept the damaged checkpoint as \(aside)") }
        }
        damagedCheckpoints = []
        for note in notes { observer?.message(note) }

        Initialization.seed = TrainingRun.streamSeed(c.seed, 1)
        let model = try ModelFactory.build(modelConfiguration, policy: c.strategy)
        if resumed == nil, let source = c.initFrom {
            let report = try FineTuning.initialize(model, from: source)
            observer?.message(report.description)
        }
        // Fine-tuning (FineTuning.swift): the optimizer holds the trainable parameters alone,
        // and its checkpoint state is named by them.
        let trainable = FineTuning.trainableParameters(model, freeze: c.frozenPart)
        let frozenModules = FineTuning.frozenModules(model, freeze: c.frozenPart)
        if c.frozenPart != .none {
            guard !frozenModules.isEmpty, trainable.count < model.parameters.count else {
                throw TrainingError.invalidOption("--freeze", reason: "\(modelConfiguration.name) has no '\(c.frozenPart.rawValue)'"
                                                  + " part to freeze (torchvision-named DenseNets have features and classifier)")
            }
            let count = trainable.reduce(0) { $0 + $1.count }
            observer?.message("frozen: \(c.frozenPart.rawValue) (weights fixed, batch norm in evaluation mode); training"
                              + " \(count) of \(model.parameterCount) parameters")
        }
        let optimizer = c.optimizer.make(trainable)
        let parameterNames = TrainingCheckpoint.parameterNames(of: optimizer, in: model)
        let ranks = communicator.size
        let slice = RankSlice(rank: communicator.rank, rankCount: ranks)
        let writesFiles = communicator.rank == 0
        var trainOptions = c.loader(for: trainSet, model: modelConfiguration, split: .train).options
        trainOptions.minimumLastBatch = batchNormPlan.minimumLastBatch
        let trainLoader = DataLoader(trainSet, options: trainOptions, slice: slice)
        let testLoader = c.loader(for: testSet, model: modelConfiguration, split: .test, slice: slice)
        let parallel = ranks > 1
            ? try DataParallelTraining(model: model, communicator: communicator, synchronizeBatchNorm: synchronizeBatchNorm,
                                       bucketCapBytes: bucketCapBytes)
            : nil
        if parallel != nil {
            try DataParallelTraining.checkSlices(exampleCount: trainLoader.exampleCount, batchSize: c.batchSize,
                                                 ranks: ranks, option: "--batch")
        }
        let stepsPerEpoch = trainLoader.batchesPerEpoch
        guard stepsPerEpoch > 0 else {
            throw TrainingError.invalidOption("--limit", reason: "no training example is left to train on")
        }
        let schedule = c.learningRateSchedule(stepsPerEpoch: stepsPerEpoch)
        let trainer = Trainer(model: model, optimizer: optimizer, schedule: schedule)
        trainer.frozenModules = frozenModules
        // Frozen features need no graph: no activations kept for them, no backward through them.
        if c.frozenPart == .features, let denseNet = model as? DenseNet { denseNet.featuresWithoutGradient = true }

        var lossSum = 0.0, correct = 0, examples = 0
        var epochSecondsBefore = 0.0, runSecondsBefore = 0.0
        if let resumed {
            let p = resumed.progress
            try TrainingCheckpoint.loadModel(model, from: resumed.model)
            try TrainingCheckpoint.loadOptimizer(optimizer, parameterNames: parameterNames, from: resumed.state,
                                                 stepCount: p.optimizerStepCount)
            guard let loaderState = p.loader.state, let seed = UInt64(p.dropoutSeed) else {
                throw TrainingError.invalidCheckpointMetadata(field: "training_progress", reason: "seed is not a UInt64")
            }
            try trainLoader.restore(loaderState)
            Autograd.dropoutSeed = seed
            trainer.globalStep = p.globalStep
            (lossSum, correct, examples) = (p.epochLossSum, p.epochCorrect, p.epochExamples)
            (epochSecondsBefore, runSecondsBefore) = (p.epochSeconds, p.runSeconds)
            observer?.message("resuming \(c.model.name) at epoch \(loaderState.epoch + 1), step \(p.globalStep) from \(resumed.model)")
        } else {
            Autograd.dropoutSeed = TrainingRun.streamSeed(c.seed, 2)
        }
        if let parallel {
            try parallel.broadcastState(of: model)
            observer?.message("data-parallel over \(ranks) ranks: \(parallel.buckets.buckets.count) gradient bucket(s),"
                              + " batch norm \(synchronizeBatchNorm ? "synchronised" : "per rank")")
        }
        let log = try MetricsLog(directory: outputDirectory, resumingAtStep: resumed?.progress.globalStep,
                                 writesFiles: writesFiles)
        /// The checkpoint, written by rank 0 alone.
        func saveCheckpoint(_ p: TrainingProgress) throws {
            guard writesFiles else { return }
            try TrainingCheckpoint.save(directory: outputDirectory, model: model, optimizer: optimizer, progress: p,
                                        classNames: trainSet.classNames)
        }
        var runInfo = ["parameters": String(model.parameterCount), "threads": String(Parallel.threadCount),
                       "model": modelConfiguration.name, "input": modelConfiguration.inputShape.description]
        if let source = c.initFrom { runInfo["init_from"] = source }
        if c.frozenPart != .none { runInfo["freeze"] = c.frozenPart.rawValue }
        if parallel != nil {
            runInfo["ranks"] = String(ranks)
            runInfo["synchronized_batch_norm"] = String(synchronizeBatchNorm)
        }

        func elapsed() -> Double { runSecondsBefore + Date().timeIntervalSince(clockStart) }
        func progress(epochSeconds: Double) -> TrainingProgress {
            TrainingProgress(configuration: c, globalStep: trainer.globalStep, optimizerStepCount: optimizer.stepCount,
                             loader: DataLoaderStateRecord(trainLoader.state), dropoutSeed: String(Autograd.dropoutSeed),
                             epochLossSumBits: String(lossSum.bitPattern, radix: 16), epochCorrect: correct,
                             epochExamples: examples, epochSeconds: epochSeconds, runSeconds: elapsed())
        }

        var lastTest: EvaluationResult? = nil
        var lastSpeed = 0.0
        var stopped = false
        epochs: while trainLoader.state.epoch < c.epochs {
            let epoch = trainLoader.state.epoch + 1
            let epochStart = Date()
            var sessionExamples = 0, sessionSteps = 0
            let firstStep = CheckedSize.ceilingDivision(trainLoader.state.position, by: c.batchSize)
            while let batch = try trainLoader.next() {
                let m: StepMetrics, stopNow: Bool
                let stopAfterStep = stopAfterStep
                let askedToStop = { TrainingRun.stopRequested || stopAfterStep == trainer.globalStep }
                if let parallel {
                    // Every rank stops at the step where any one was asked to.
                    (m, stopNow) = try parallel.step(trainer, batch: batch, stopRequested: askedToStop)
                    lastCommunicationWaitSeconds = parallel.buckets.lastWaitSeconds
                } else {
                    m = trainer.step(batch)
                    stopNow = askedToStop()
                }
                guard m.loss.isFinite else {
                    throw TrainingError.nonFiniteLoss(step: trainer.globalStep, epoch: epoch, loss: m.loss)
                }
                lossSum += Double(m.loss) * Double(m.examples)
                correct += m.correct
                examples += m.examples
                sessionExamples += m.examples
                sessionSteps += 1
                let seconds = Date().timeIntervalSince(epochStart)
                let speed = Double(sessionExamples) / max(seconds, 1e-9)
                let stepInEpoch = batch.index + 1
                let (rss, peak) = (ProcessProbe.peakResidentBytes, Memory.peak)
                log.append(MetricRecord(phase: .train, epoch: epoch, step: trainer.globalStep, loss: Double(m.loss),
                                        accuracy: Double(m.correct) / Double(m.examples), learningRate: Double(m.learningRate),
                                        imagesPerSecond: speed, elapsedSeconds: elapsed(), peakResidentBytes: rss,
                                        runtimePeakBytes: peak))
                let remaining = seconds / Double(sessionSteps) * Double(stepsPerEpoch - stepInEpoch)
                observer?.step(StepProgress(
                    epoch: epoch, epochs: c.epochs, stepInEpoch: stepInEpoch, stepsPerEpoch: stepsPerEpoch,
                    globalStep: trainer.globalStep, loss: m.loss, epochLoss: lossSum / Double(examples),
                    epochAccuracy: Double(correct) / Double(examples), learningRate: m.learningRate,
                    imagesPerSecond: speed, epochSeconds: epochSecondsBefore + seconds, remainingSeconds: remaining,
                    peakResidentBytes: rss, runtimePeakBytes: peak))
                if stopNow {
                    let p = progress(epochSeconds: epochSecondsBefore + seconds)
                    try saveCheckpoint(p)
                    try log.writeSummaries(configuration: c, extra: runInfo)
                    observer?.message("stopped at epoch \(epoch), step \(trainer.globalStep) (\(firstStep + sessionSteps)/\(stepsPerEpoch) of the epoch);"
                                      + " continue with --resume \(outputDirectory)")
                    lastSpeed = speed
                    stopped = true
                    break epochs
                }
            }
            // The epoch is over: its training mean, then the test set in evaluation mode.
            let seconds = epochSecondsBefore + Date().timeIntervalSince(epochStart)
            lastSpeed = Double(sessionExamples) / max(Date().timeIntervalSince(epochStart), 1e-9)
            let trainLoss = lossSum / Double(max(examples, 1)), trainAccuracy = Double(correct) / Double(max(examples, 1))
            log.append(MetricRecord(phase: .trainEpoch, epoch: epoch, step: trainer.globalStep, loss: trainLoss,
                                    accuracy: trainAccuracy, imagesPerSecond: lastSpeed, elapsedSeconds: elapsed(),
                                    peakResidentBytes: ProcessProbe.peakResidentBytes, runtimePeakBytes: Memory.peak))
            let showEvaluation: (Int, Int) -> Void = { [observer] in observer?.evaluating(batch: $0, of: $1) }
            let test = try parallel?.evaluate(model, loader: testLoader, classCount: modelConfiguration.outputCount,
                                              progress: showEvaluation)
                ?? Trainer.evaluate(model, loader: testLoader, classCount: modelConfiguration.outputCount,
                                    progress: showEvaluation)
            model.train()
            guard test.loss.isFinite else { throw TrainingError.nonFiniteTestLoss(epoch: epoch, loss: test.loss) }
            lastTest = test
            let (rss, peak) = (ProcessProbe.peakResidentBytes, Memory.peak)
            log.append(MetricRecord(phase: .test, epoch: epoch, step: trainer.globalStep, loss: test.loss,
                                    accuracy: test.accuracy, imagesPerSecond: lastSpeed, elapsedSeconds: elapsed(),
                                    peakResidentBytes: rss, runtimePeakBytes: peak))
            (lossSum, correct, examples, epochSecondsBefore) = (0, 0, 0, 0)
            try saveCheckpoint(progress(epochSeconds: 0))
            try log.writeSummaries(configuration: c, extra: runInfo)
            observer?.epochFinished(EpochReport(epoch: epoch, epochs: c.epochs, trainLoss: trainLoss,
                                                trainAccuracy: trainAccuracy, test: test, seconds: seconds,
                                                imagesPerSecond: lastSpeed, peakResidentBytes: rss, runtimePeakBytes: peak))
            if let stop = stopAfterEpoch, epoch >= stop, epoch < c.epochs {
                observer?.message("stopped after epoch \(epoch) of \(c.epochs); continue with --resume \(outputDirectory)")
                stopped = true
                break
            }
        }
        return TrainingSummary(outputDirectory: outputDirectory, epochsCompleted: trainLoader.state.epoch,
                               globalStep: trainer.globalStep, stoppedEarly: stopped, lastTest: lastTest,
                               seconds: Date().timeIntervalSince(clockStart), imagesPerSecond: lastSpeed,
                               peakResidentBytes: ProcessProbe.peakResidentBytes, runtimePeakBytes: Memory.peak,
                               records: log.records)
    }
}

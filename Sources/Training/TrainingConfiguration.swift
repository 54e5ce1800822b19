import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// The optimizer of a run, with PyTorch's semantics (see `SGD`, `Adam`).
public struct OptimizerSettings: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable { case sgd, adam }

    public var kind: Kind
    public var learningRate: Float
    /// SGD momentum (ignored by Adam).
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool

    public init(kind: Kind = .sgd, learningRate: Float = 0.1, momentum: Float = 0.9, weightDecay: Float = 1e-4,
                nesterov: Bool = false) {
        self.kind = kind
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public func validate() throws {
        guard learningRate > 0, learningRate.isFinite else {
            throw TrainingError.invalidOption("--lr", reason: "\(learningRate) must be a positive number")
        }
        guard momentum >= 0, momentum < 1 else {
            throw TrainingError.invalidOption("--momentum", reason: "\(momentum) must be in [0, 1)")
        }
        guard weightDecay >= 0 else { throw TrainingError.invalidOption("--weight-decay", reason: "\(weightDecay) is negative") }
        if nesterov && (kind != .sgd || momentum == 0) {
            throw TrainingError.invalidOption("--nesterov", reason: "needs --optimizer sgd and --momentum > 0")
        }
    }

    /// The optimizer state the memory planner counts for these settings: none (SGD without
    /// momentum), one buffer per parameter (momentum) or two (Adam), as `SGD` and `Adam` allocate.
    public var planned: PlannedOptimizer {
        switch kind {
        case .adam: return .adam
        case .sgd: return momentum > 0 ? .sgdMomentum : .sgd
        }
    }

    /// State tensors the optimizer keeps per parameter tensor (`PlannedOptimizer.statesPerParameter`).
    public var statesPerParameter: Int { planned.statesPerParameter }

    public func make(_ parameters: [Parameter]) -> any Optimizer {
        switch kind {
        case .sgd:
            return SGD(parameters: parameters, learningRate: learningRate, momentum: momentum, nesterov: nesterov,
                       weightDecay: weightDecay)
        case .adam:
            return Adam(parameters: parameters, learningRate: learningRate, weightDecay: weightDecay)
        }
    }
}

/// Everything that determines a training run's numbers: model, memory strategy, data,
/// optimizer, schedule, batch size, seed. Saved in every checkpoint, so a resumed run trains
/// exactly as the uninterrupted one would. The same configuration describes an image run
/// (`TrainingRun`) and a regression run on a table (`DatasetSpec.table`, `RegressionRun`),
/// which ignores `augment`.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var model: ModelConfiguration
    public var strategy: MemoryPolicy
    public var data: DatasetSpec
    public var epochs: Int
    public var batchSize: Int
    public var evaluationBatchSize: Int
    public var optimizer: OptimizerSettings
    public var schedule: LearningRateSchedule.Kind
    public var warmupEpochs: Double
    /// `.step` milestones (0-based epochs); nil: ⌊E/2⌋, ⌊3E/4⌋.
    public var milestones: [Int]?
    public var gamma: Float
    /// Seeds weight initialisation, the shuffles and augmentation, and dropout.
    public var seed: UInt64
    /// Use only the first `limit` training examples.
    public var limit: Int?
    /// Use only the first `testLimit` test examples.
    public var testLimit: Int?
    /// Apply the dataset's training augmentation (CIFAR crop and flip).
    public var augment: Bool
    /// `--init-from`: the torchvision-named state_dict (safetensors) whose weights a fresh run
    /// starts from (`FineTuning.initialize`); nil: the model's own initialisation. Kept so that
    /// the run's record says where its weights came from (a resumed run loads its checkpoint).
    /// Optional in the saved JSON: training states written before it decode as nil.
    public var initFrom: String?
    /// `--freeze`: which parameters stay fixed (`FineTuning.Freeze`); nil (older training
    /// states) means none.
    public var freeze: FineTuning.Freeze?

    /// `freeze`, `.none` when unset.
    public var frozenPart: FineTuning.Freeze { freeze ?? .none }

    public init(model: ModelConfiguration, strategy: MemoryPolicy = .shared, data: DatasetSpec, epochs: Int = 1,
                batchSize: Int = 128, evaluationBatchSize: Int? = nil, optimizer: OptimizerSettings = OptimizerSettings(),
                schedule: LearningRateSchedule.Kind = .cosine, warmupEpochs: Double = 0, milestones: [Int]? = nil,
                gamma: Float = 0.1, seed: UInt64 = 0, limit: Int? = nil, testLimit: Int? = nil, augment: Bool = true,
                initFrom: String? = nil, freeze: FineTuning.Freeze? = nil) {
        self.model = model
        self.strategy = strategy
        self.data = data
        self.epochs = epochs
        self.batchSize = batchSize
        self.evaluationBatchSize = evaluationBatchSize ?? batchSize
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmupEpochs = warmupEpochs
        self.milestones = milestones
        self.gamma = gamma
        self.seed = seed
        self.limit = limit
        self.testLimit = testLimit
        self.augment = augment
        self.initFrom = initFrom
        self.freeze = freeze == FineTuning.Freeze.none ? nil : freeze
    }

    public func validate() throws {
        // The model's sizes may come from a file (a training state): bounded before anything is built.
        try ModelBounds.check(model, field: "model_configuration")
        guard epochs >= 1 else { throw TrainingError.invalidOption("--epochs", reason: "\(epochs) must be at least 1") }
        guard batchSize >= 1 else { throw TrainingError.invalidOption("--batch", reason: "\(batchSize) must be at least 1") }
        guard evaluationBatchSize >= 1 else {
            throw TrainingError.invalidOption("--eval-batch", reason: "\(evaluationBatchSize) must be at least 1")
        }
        guard warmupEpochs >= 0, warmupEpochs <= Double(epochs) else {
            throw TrainingError.invalidOption("--warmup-epochs", reason: "\(warmupEpochs) must be in 0...\(epochs)")
        }
        guard gamma > 0 else { throw TrainingError.invalidOption("--gamma", reason: "\(gamma) must be positive") }
        if let m = milestones, m.contains(where: { $0 < 1 }) {
            throw TrainingError.invalidOption("--milestones", reason: "epochs \(m) must be at least 1")
        }
        if let l = limit, l < 1 { throw TrainingError.invalidOption("--limit", reason: "\(l) must be at least 1") }
        if let l = testLimit, l < 1 { throw TrainingError.invalidOption("--test-limit", reason: "\(l) must be at least 1") }
        try optimizer.validate()
        // One step must fit in physical memory (a lower bound, nothing built): --batch Int.max, an
        // input of 1x100000x100000 or 10^5 layers are refused here, before any tensor exists.
        try ModelBounds.checkStep(model, batch: batchSize, optimizerStates: optimizer.statesPerParameter,
                                  what: "--batch \(batchSize) with \(model.name) (input \(model.inputShape))")
        let m = model
        if initFrom != nil || frozenPart != .none, data.isTable || m.family != .denseNet {
            let option = initFrom != nil ? "--init-from" : "--freeze"
            throw TrainingError.invalidOption(option, reason: "fine-tuning starts a DenseNet of the zoo (torchvision names:"
                                              + " features.…, classifier.…) on image data, not \(m.name) on \(data.name)")
        }
        guard data.isTable else { return }
        guard m.takesFeatureVectors else {
            throw TrainingError.invalidOption("--model", reason: "csv data (a table of numbers) trains the MLPs of the zoo"
                                              + " (dense-mlp, mlp), not \(m.name), an image model")
        }
        guard m.outputCount == 1 else {
            throw TrainingError.invalidOption("--classes", reason: "regression trains a model with one output (mean squared"
                                              + " error against the last column); \(m.name) has \(m.outputCount): give --classes 1")
        }
    }

    public func learningRateSchedule(stepsPerEpoch: Int) -> LearningRateSchedule {
        LearningRateSchedule(kind: schedule, baseRate: optimizer.learningRate, epochs: epochs,
                             stepsPerEpoch: max(stepsPerEpoch, 1), warmupEpochs: warmupEpochs,
                             milestones: milestones, gamma: gamma)
    }

    /// The loader of a split, resizing to the model's input and normalising as in training.
    /// `slice`: a data-parallel rank's share of every global batch (Sources/Training/DataParallelTraining.swift).
    public func loader(for dataset: ImageDataset, model: ModelConfiguration, split: DatasetSplit,
                       prefetch: Bool = true, slice: RankSlice = .whole) -> DataLoader {
        let options = DataLoaderOptions(
            batchSize: split == .train ? batchSize : evaluationBatchSize,
            shuffle: split == .train, dropLast: false,
            resize: ModelInput.resize(for: model, dataset: dataset),
            normalization: data.normalization(for: dataset),
            augmentation: split == .train && augment ? data.trainAugmentation : .none,
            limit: split == .train ? limit : testLimit, prefetch: prefetch, seed: seed)
        return DataLoader(dataset, options: options, slice: slice)
    }
}

/// How images become a model's input.
public enum ModelInput {
    /// The zoo model `name` for `dataset`: classes default to the dataset's; an image model
    /// keeps its default height × width but takes the data's channel count (so `densenet121`,
    /// 3x224x224, trains on Fashion-MNIST as 1x224x224), unless `input` says otherwise;
    /// `dense-mlp` reads the flattened C·H·W pixels.
    public static func resolveModel(named name: String, classes: Int?, input: String?, dataset: ImageDataset,
                                    datasetName: String) throws -> ModelConfiguration {
        let base = try ModelZoo.configuration(named: name)
        let classes = classes ?? dataset.classCount
        guard classes >= dataset.classCount else {
            throw TrainingError.tooFewClasses(classes: classes, dataset: datasetName, datasetClasses: dataset.classCount)
        }
        let isMLP = base.takesFeatureVectors
        let text: String
        if let input {
            text = input
        } else if isMLP {
            text = "\(dataset.imageSize)"
        } else {
            text = "\(dataset.channels)x\(base.inputShape.height)x\(base.inputShape.width)"
        }
        let model = try ModelZoo.configuration(named: name, classes: classes, input: text)
        if isMLP {
            guard model.inputShape.channels == dataset.imageSize else {
                throw TrainingError.invalidOption("--input", reason: "\(name) reads the \(dataset.imageSize) flattened pixels"
                                                  + " (C·H·W) of \(datasetName): give --input \(dataset.imageSize) or leave it out")
            }
        } else if model.inputShape.channels != dataset.channels {
            throw TrainingError.channelMismatch(model: model.name, modelChannels: model.inputShape.channels,
                                                data: datasetName, dataChannels: dataset.channels)
        }
        return model
    }

    /// The resize the loader applies: to the model's H×W for image models, none for the MLP.
    public static func resize(for model: ModelConfiguration, dataset: ImageDataset) -> ImageSize? {
        if model.takesFeatureVectors { return nil }
        let s = model.inputShape
        if s.height == dataset.height && s.width == dataset.width { return nil }
        return ImageSize(height: s.height, width: s.width)
    }

    /// A batch `(C, N, H, W)` as the model's input: unchanged for image models, flattened to
    /// `(C·H·W, N)` for the MLP (feature c·H·W + y·W + x, as PyTorch's `flatten(1)` of NCHW).
    public static func prepare(_ images: Tensor, for model: ModelConfiguration) -> Tensor {
        guard model.takesFeatureVectors else { return images }
        precondition(images.rank == 4, "ModelInput.prepare: images \(images.shape) must be (C, N, H, W)")
        let (c, n, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let plane = h * w
        let out = Tensor(shape: [c * plane, n])
        let src = images.pointer, dst = out.pointer
        // (C, N, H·W) → (C·H·W, N)
        for ch in 0..<c {
            for j in 0..<n {
                let s = src + (ch * n + j) * plane
                for p in 0..<plane { dst[(ch * plane + p) * n + j] = s[p] }
            }
        }
        return withExtendedLifetime(images) { out }
    }
}

import Autograd
import Checkpoints
import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// Where a training run is, beyond its tensors: enough to continue it so that every later
/// loss is bit-for-bit the one the uninterrupted run would have logged (at the same thread
/// count). Stored as JSON in the `__metadata__` of `training-state.safetensors`.
public struct TrainingProgress: Codable, Equatable, Sendable {
    public var configuration: TrainingConfiguration
    /// Optimizer steps taken; the schedule's clock.
    public var globalStep: Int
    public var optimizerStepCount: Int
    /// The training loader's epoch and position (with its seed, the whole shuffle and
    /// augmentation state).
    public var loader: DataLoaderStateRecord
    /// `Autograd.dropoutSeed`, the dropout seed stream (decimal text: a UInt64).
    public var dropoutSeed: String
    /// Running sums of the current epoch when saved mid-epoch (bit patterns of the Double loss
    /// sum, so that the epoch mean is exact after resuming).
    public var epochLossSumBits: String
    public var epochCorrect: Int
    public var epochExamples: Int
    /// Training time of the current epoch before the save, seconds (for display only).
    public var epochSeconds: Double
    /// Wall time of the whole run before the save, seconds (for display only).
    public var runSeconds: Double

    public var epochLossSum: Double { Double(bitPattern: UInt64(epochLossSumBits, radix: 16) ?? 0) }
}

/// `DataLoaderState` with its seed as text (JSON numbers above 2^53 lose bits in many readers).
public struct DataLoaderStateRecord: Codable, Equatable, Sendable {
    public var seed: String
    public var epoch: Int
    public var position: Int
    public var exampleCount: Int
    public var batchSize: Int

    public init(_ s: DataLoaderState) {
        seed = String(s.seed)
        epoch = s.epoch
        position = s.position
        exampleCount = s.exampleCount
        batchSize = s.batchSize
    }

    public var state: DataLoaderState? {
        guard let seed = UInt64(seed) else { return nil }
        return DataLoaderState(seed: seed, epoch: epoch, position: position, exampleCount: exampleCount, batchSize: batchSize)
    }
}

/// Checkpoints of a run, two files in a checkpoint folder (`TrainingCheckpoint+Folders.swift`:
/// `checkpoints/<sequence>-step-<step>/`, linked from the run folder):
///
/// - `model.safetensors`: the weights alone, with torchvision's `state_dict` names and shapes
///   (`features.conv0.weight`, `features.denseblock1.denselayer1.norm1.running_mean`, …,
///   `classifier.weight`), F32, row-major as PyTorch stores them: our parameters already have
///   PyTorch's shapes, so they are written as they are. BatchNorm's `num_batches_tracked`
///   (int64 in PyTorch) is not written: `_NormBase._load_from_state_dict` fills in a missing
///   one when the state dict carries no version metadata (`local_metadata.get("version")` is
///   None, as for a dict from `safetensors.torch.load_file`), so
///   `model.load_state_dict(load_file(path), strict=True)` works on a torchvision DenseNet.
///   The metadata names the model and its configuration (`model_configuration`, JSON).
/// - `training-state.safetensors`: the optimizer's tensors, named
///   `optimizer.<parameter name>.<momentum_buffer | exp_avg | exp_avg_sq>`, and the
///   `TrainingProgress` as JSON in the metadata.
///
/// Both carry the same `checkpoint_id`; a pair from different saves is refused. Each file is
/// written atomically (`Safetensors.write`), and the folder as a whole (`save`).
public enum TrainingCheckpoint {
    public static let modelFileName = "model.safetensors"
    public static let stateFileName = "training-state.safetensors"
    public static let optimizerPrefix = "optimizer."

    // MARK: Model weights

    /// Metadata of a model file: the model and its configuration, plus `extra`.
    public static func modelMetadata(_ model: any Network, extra: [String: String] = [:]) -> [String: String] {
        var m = extra
        m["format"] = "pt"
        m["framework"] = "densenet-swift"
        m["model"] = model.modelConfiguration.name
        m["model_configuration"] = model.modelConfiguration.json
        m["layout"] = "PyTorch state_dict names and shapes, F32 row-major; BatchNorm num_batches_tracked omitted"
        return m
    }

    /// Writes `model.stateDict()` as it is (atomically).
    public static func saveModel(_ model: any Network, to path: String, metadata: [String: String] = [:]) throws {
        let sources = model.stateDict().map { TensorSource(name: $0.name, tensor: $0.tensor) }
        try Safetensors.write(sources, metadata: modelMetadata(model, extra: metadata), to: path)
    }

    /// Strict load of a model file into `model`'s parameters and buffers: a file whose tensors
    /// are not exactly the model's (names and shapes) is refused with an error naming them.
    @discardableResult
    public static func loadModel(_ model: Module, from path: String) throws -> [String: String] {
        try Safetensors.load(path, into: Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.name, $0.tensor) }))
    }

    /// The metadata key of the class names (a JSON array of strings, by label).
    public static let classNamesKey = "class_names"

    /// The class names recorded in a model file's metadata, or nil when it has none.
    public static func classNames(inFile path: String) throws -> [String]? {
        guard let json = try Safetensors.readHeader(path).metadata[classNamesKey] else { return nil }
        guard let names = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
            throw TrainingError.invalidCheckpointMetadata(field: classNamesKey, reason: "is not a JSON array of strings")
        }
        return names
    }

    /// The model configuration recorded in a model file's metadata, or nil when it has none
    /// (e.g. a file written by PyTorch).
    public static func modelConfiguration(inFile path: String) throws -> ModelConfiguration? {
        guard let json = try Safetensors.readHeader(path).metadata["model_configuration"] else { return nil }
        let configuration: ModelConfiguration
        do { configuration = try ModelConfiguration(json: json) } catch {
            throw TrainingError.invalidCheckpointMetadata(field: "model_configuration", reason: Self.reason(error))
        }
        try ModelBounds.check(configuration, field: "model_configuration")
        return configuration
    }

    /// What a decoding error says, without Swift's coding-path noise.
    static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.debugDescription
        case DecodingError.keyNotFound(let key, _): return "no field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "\(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        default: return "\(error)"
        }
    }

    // MARK: Optimizer state

    /// The model's names of the optimizer's parameters, in the optimizer's order: all of the
    /// model's, or a subset (the classifier of a run with frozen features, `FineTuning`).
    public static func parameterNames(of optimizer: any Optimizer, in model: Module) -> [String] {
        let names = Dictionary(uniqueKeysWithValues: model.namedParameters().map { (ObjectIdentifier($0.parameter), $0.name) })
        return optimizer.parameters.enumerated().map { names[ObjectIdentifier($0.element)] ?? "parameter\($0.offset)" }
    }

    /// The optimizer's state tensors under checkpoint names: index `i` of `namedState()`
    /// (`momentum_buffer.i`) belongs to parameter `i` of the model.
    public static func optimizerTensors(_ optimizer: any Optimizer, parameterNames: [String]) -> [(name: String, tensor: Tensor)] {
        optimizer.namedState().map { item in
            if let dot = item.name.lastIndex(of: "."), let i = Int(item.name[item.name.index(after: dot)...]),
               i >= 0, i < parameterNames.count {
                return (optimizerPrefix + parameterNames[i] + "." + item.name[..<dot], item.tensor)
            }
            return (optimizerPrefix + item.name, item.tensor)
        }
    }

    // MARK: Both files

    /// Writes the weights to `directory/model.safetensors` and the optimizer with `progress` to
    /// `directory/training-state.safetensors`, under one new checkpoint id (each file
    /// atomically; `save` makes the pair atomic as a whole). `classNames` (the data set's, by
    /// label) go into both files' metadata as `class_names`.
    static func writePair(directory: String, model: any Network, optimizer: any Optimizer,
                          progress: TrainingProgress, classNames: [String] = []) throws {
        let id = "\(progress.globalStep)-\(UUID().uuidString.prefix(8))"
        var shared = ["checkpoint_id": id, "step": String(progress.globalStep), "epoch": String(progress.loader.epoch)]
        if !classNames.isEmpty {
            shared[classNamesKey] = String(decoding: try JSONEncoder().encode(classNames), as: UTF8.self)
        }
        try saveModel(model, to: path(directory, modelFileName), metadata: shared)
        let names = parameterNames(of: optimizer, in: model)
        let sources = optimizerTensors(optimizer, parameterNames: names).map { TensorSource(name: $0.name, tensor: $0.tensor) }
        var metadata = shared
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        metadata["training_progress"] = String(decoding: try encoder.encode(progress), as: UTF8.self)
        metadata["format"] = "densenet-swift-training-state"
        try Safetensors.write(sources, metadata: metadata, to: path(directory, stateFileName))
    }

    /// Reads and checks the progress of a checkpoint pair (without loading tensors).
    public static func readProgress(model modelPath: String, state statePath: String) throws -> TrainingProgress {
        let modelMeta = try Safetensors.readHeader(modelPath).metadata
        let stateMeta = try Safetensors.readHeader(statePath).metadata
        guard let json = stateMeta["training_progress"] else {
            throw TrainingError.missingCheckpointMetadata(path: statePath, field: "training_progress",
                                                          hint: "it was not written by `densenet train`")
        }
        let modelID = modelMeta["checkpoint_id"] ?? "none", stateID = stateMeta["checkpoint_id"] ?? "none"
        guard modelID == stateID else {
            throw TrainingError.checkpointPairMismatch(modelPath: modelPath, modelStep: modelMeta["step"] ?? "?",
                                                       statePath: statePath, stateStep: stateMeta["step"] ?? "?")
        }
        do {
            return try JSONDecoder().decode(TrainingProgress.self, from: Data(json.utf8))
        } catch {
            throw TrainingError.invalidCheckpointMetadata(field: "training_progress", reason: "\(error)")
        }
    }

    /// Strict load of the optimizer tensors into `optimizer`'s state (and its step count).
    public static func loadOptimizer(_ optimizer: any Optimizer, parameterNames: [String], from path: String,
                                     stepCount: Int) throws {
        let targets = Dictionary(uniqueKeysWithValues: optimizerTensors(optimizer, parameterNames: parameterNames)
            .map { ($0.name, $0.tensor) })
        try Safetensors.load(path, into: targets)
        optimizer.stepCount = stepCount
    }

    static func path(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }
}

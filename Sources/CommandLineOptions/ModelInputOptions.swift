import ArgumentParser
import Datasets
import DenseNetModels
import Training

/// The model and its input: `--model`, `--input`, `--classes`, `--transition-pooling`.
/// Shared by `densenet train`, `evaluate`, `summary` and `bench-memory`; each command says in
/// its discussion what it does without `--model`.
public struct ModelInputOptions: ParsableArguments {
    @Option(help: "A model of the zoo: \(ModelZoo.names.joined(separator: ", ")), or densenet-bc-L-k.")
    public var model: String?

    @Option(help: "Model input CxHxW (F features for dense-mlp and mlp); default: the model's, with the data's channels.")
    public var input: String?

    @Option(help: "Classifier outputs (outputs of an MLP); default: the data's classes, else the model's.")
    public var classes: Int?

    @Option(name: .customLong("transition-pooling"), help: "DenseNet transition pooling: avg (default) or max.")
    public var transitionPooling: String?

    public init() {}

    public func validate() throws {
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1, got \(classes)") }
        if let transitionPooling { _ = try ModelOptions.transitionPooling(transitionPooling) }
    }

    /// `--transition-pooling`, nil when not given.
    public func parsedTransitionPooling() throws -> DenseNetConfiguration.TransitionPooling? {
        try transitionPooling.map(ModelOptions.transitionPooling)
    }

    /// The zoo model `--model` (or `defaultModel`) with `--classes`, `--input` and
    /// `--transition-pooling` applied; `name` replaces `--model` (bench-memory's depth sweep),
    /// and `options` then names what the user typed for it in a size error ("--depths 100000").
    public func configuration(named name: String? = nil, defaultModel: String? = nil,
                              options: String? = nil) throws -> ModelConfiguration {
        guard let name = name ?? model ?? defaultModel else {
            throw ValidationError("--model is required: one of \(ModelZoo.names.joined(separator: ", ")), or densenet-bc-L-k")
        }
        return try checkedSizes(try ModelOptions.applying(transitionPooling: transitionPooling,
                                                          to: try ModelZoo.configuration(named: name, classes: classes, input: input)),
                                named: name, options: options)
    }

    /// `model` when its sizes can be computed, one example and its parameters fit in this
    /// machine's physical memory and its input survives the downsampling chain
    /// (`ModelInput.check`: `ModelBounds` in microseconds, then `Architecture`; nothing built),
    /// else an error naming the options that set them: the one place the command lines check
    /// the model's numbers (`--model densenet-bc-100000-12`, `--input 3x3037000500x3037000500`,
    /// `--classes 4611686018427387904`, `--input 1x4x4` for d2l).
    public func checkedSizes(_ model: ModelConfiguration, named name: String? = nil,
                             options: String? = nil) throws -> ModelConfiguration {
        let inputName = input.map { "--input \($0)" } ?? "input \(model.inputShape)"
        var parametersName = options ?? "--model \(name ?? self.model ?? model.name)"
        if let classes { parametersName += " with --classes \(classes)" }
        if let input { parametersName += " and --input \(input)" }
        try ModelInput.check(model, inputName: inputName, parametersName: parametersName)
        return model
    }

    /// The model for training or evaluating on `data` (`datasetProbe`: a split of it, read for
    /// its channels, size and classes). Images: `--model` (default `d2l`) keeps its H×W and takes
    /// the data's channels (`ModelInput.resolveModel`). Tables: an MLP (default `dense-mlp`)
    /// with one output reading the table's features.
    public func configuration(for data: DatasetSpec, datasetProbe: ImageDataset? = nil) throws -> ModelConfiguration {
        let resolved: ModelConfiguration
        if let trainPath = data.tablePath(.train) {
            // Said of the model the user named, before a derived --input (the table's feature
            // count) could be misread as an image shape.
            if let model, !(try ModelZoo.configuration(named: model)).takesFeatureVectors {
                throw TrainingError.invalidOption("--model", reason: "\(model) reads images (C×H×W); csv data (a table of numbers)"
                                                  + " trains the MLPs of the zoo: --model dense-mlp (the default) or mlp")
            }
            let features = try RegressionTable.read(trainPath).featureCount
            resolved = try ModelZoo.configuration(named: model ?? "dense-mlp", classes: classes ?? 1,
                                                  input: input ?? "\(features)")
        } else {
            let probe = try datasetProbe ?? data.load(.test)
            resolved = try ModelInput.resolveModel(named: model ?? "d2l", classes: classes, input: input,
                                                   dataset: probe, datasetName: data.name)
        }
        return try checkedSizes(try ModelOptions.applying(transitionPooling: transitionPooling, to: resolved))
    }

    /// Refuses a `--model`, `--classes`, `--input` or `--transition-pooling` that contradicts
    /// `saved`: a resumed run's model, or with `checkpoint` true the model a checkpoint's
    /// metadata describes (`densenet evaluate`).
    public func checkAgrees(with saved: ModelConfiguration, checkpoint: Bool = false) throws {
        func conflict(_ option: String, saved: String, given: String) -> Error {
            checkpoint ? TrainingError.invalidOption("\(option) \(given)", reason: "differs from the checkpoint's \(saved) (its"
                                                     + " model_configuration describes the model): leave \(option) out")
                : TrainingError.resumeConflict(option: option, saved: saved, given: given)
        }
        if let model, model.lowercased() != saved.name.lowercased() {
            throw conflict("--model", saved: saved.name, given: model)
        }
        // --classes and --input are not silently ignored either (evaluate ran a checkpoint's
        // model with `--input 3x100000x100000` as if it had not been typed).
        if let classes, classes != saved.outputCount {
            throw conflict("--classes", saved: "\(saved.outputCount)", given: "\(classes)")
        }
        if let input, (try? ModelZoo.parseInput(input, for: saved)) != saved.inputShape {
            throw conflict("--input", saved: saved.inputShape.description, given: input)
        }
        if let transitionPooling {
            let wanted = try ModelOptions.transitionPooling(transitionPooling)
            guard case .denseNet(let c) = saved else {
                throw TrainingError.invalidOption("--transition-pooling", reason: "\(saved.name) is not a DenseNet: only"
                                                  + " DenseNet transitions pool (avg or max)")
            }
            if c.transitionPooling != wanted {
                throw conflict("--transition-pooling", saved: c.transitionPooling.rawValue, given: wanted.rawValue)
            }
        }
    }
}

import ArgumentParser
import CommandLineOptions
import Checkpoints
import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training

/// `densenet evaluate`: loss, accuracy and confusion matrix of a checkpoint on a test set; or
/// the logits of a given input tensor (for comparisons with PyTorch).
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint: test loss, accuracy and confusion matrix.",
        discussion: """
        --checkpoint takes model.safetensors (or the run folder holding it). The model is read \
        from the checkpoint's metadata; a checkpoint without it (e.g. written by PyTorch) needs \
        --model (with --classes, --input and --transition-pooling as in training). The test \
        images (--data, default fashion-mnist; --test-limit, else --limit, of them) are resized \
        and normalised as in `densenet train`.

        Logits of a given input: --input-tensor FILE.safetensors holding an F32 tensor 'input' in \
        PyTorch's layout (N, C, H, W) — (N, F) for dense-mlp — as it enters the network (no \
        resizing or normalisation here); --dump-logits OUT.safetensors writes 'logits' (N, classes). \
        --mode train runs the forward pass in training mode (batch statistics) instead of evaluation \
        mode. Scripts/pytorch_crosscheck.py uses this to compare with torchvision.
        """)

    @Option(help: "model.safetensors, or the run folder holding it.")
    var checkpoint: String
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var modelOptions: ModelInputOptions
    @Option(help: "Batch size.")
    var batch: Int = 256
    @OptionGroup var threadsOptions: ThreadsOptions
    @OptionGroup var output: JSONOutputOptions
    @Option(name: .customLong("input-tensor"), help: "Compute the logits of the tensor 'input' of this safetensors file.")
    var inputTensor: String?
    @Option(name: .customLong("dump-logits"), help: "With --input-tensor: write the logits here (safetensors, 'logits').")
    var dumpLogits: String?
    @Option(help: "With --input-tensor: eval (running statistics, default) or train (batch statistics).")
    var mode: String = "eval"

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard mode == "eval" || mode == "train" else { throw ValidationError("--mode must be eval or train, not \(mode)") }
        if dumpLogits != nil, inputTensor == nil {
            throw ValidationError("--dump-logits writes the logits of --input-tensor: give --input-tensor FILE.safetensors too")
        }
    }

    func run() throws {
        threadsOptions.apply()
        var path = checkpoint
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            path = (path as NSString).appendingPathComponent(TrainingCheckpoint.modelFileName)
        }
        if let dumpLogits { try OutputLocation.checkFile(dumpLogits, option: "--dump-logits") }
        if let inputTensor { return try logits(checkpoint: path, inputPath: inputTensor) }

        let spec = try dataOptions.spec()
        let test = try spec.load(.test)
        let configuration = try modelConfiguration(checkpoint: path, dataset: test)
        guard configuration.outputCount >= test.classCount else {
            throw TrainingError.tooFewClasses(classes: configuration.outputCount, dataset: spec.name, datasetClasses: test.classCount)
        }
        let network = try ModelFactory.build(configuration, policy: .shared)
        try TrainingCheckpoint.loadModel(network, from: path)
        let loader = DataLoader(test, options: DataLoaderOptions(
            batchSize: batch, shuffle: false, resize: ModelInput.resize(for: configuration, dataset: test),
            normalization: spec.normalization(for: test), limit: dataOptions.testExamples))
        let progress = ConsoleProgress(isTerminal: !output.json && isatty(STDOUT_FILENO) != 0)
        let started = Date()
        let result = try Trainer.evaluate(network, loader: loader, classCount: configuration.outputCount) { done, total in
            progress.evaluating(batch: done, of: total)
        }
        let seconds = Date().timeIntervalSince(started)
        let names = test.classNames + (test.classNames.isEmpty ? [] : (test.classCount..<configuration.outputCount).map { "(unused \($0))" })
        if output.json {
            struct Report: Encodable {
                var checkpoint: String
                var model: String
                var data: String
                var examples: Int
                var loss: Double
                var accuracy: Double
                var classNames: [String]
                var confusion: [[Int]]
                var recall: [Double?]
                var seconds: Double
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let report = Report(checkpoint: path, model: configuration.name, data: spec.name, examples: result.examples,
                                loss: result.loss, accuracy: result.accuracy, classNames: names,
                                confusion: result.confusion.counts, recall: result.confusion.recall, seconds: seconds)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            progress.message("\(configuration.name) (\(path)) on \(spec.name) test: \(result.examples) images"
                             + " in \(ConsoleProgress.clock(seconds))")
            progress.message("loss \(String(format: "%.4f", result.loss)), accuracy \(String(format: "%.2f%%", 100 * result.accuracy))"
                             + " (\(result.confusion.correct)/\(result.examples))")
            progress.message(result.confusion.table(classNames: names))
        }
    }

    /// The model of a checkpoint: from its metadata, else from --model.
    func modelConfiguration(checkpoint path: String, dataset: ImageDataset?) throws -> ModelConfiguration {
        if let configuration = try TrainingCheckpoint.modelConfiguration(inFile: path) {
            try modelOptions.checkAgrees(with: configuration, checkpoint: true)
            return configuration
        }
        guard modelOptions.model != nil else {
            throw TrainingError.missingCheckpointMetadata(path: path, field: "model_configuration",
                                                          hint: "name the model with --model (and --classes, --input as in training)")
        }
        if let dataset {
            return try modelOptions.configuration(for: try dataOptions.spec(), datasetProbe: dataset)
        }
        return try modelOptions.configuration()
    }

    /// --input-tensor: the logits of a given (N, C, H, W) tensor, in evaluation or training mode.
    func logits(checkpoint path: String, inputPath: String) throws {
        let configuration = try modelConfiguration(checkpoint: path, dataset: nil)
        let network = try ModelFactory.build(configuration, policy: .shared)
        try TrainingCheckpoint.loadModel(network, from: path)
        let contents = try Safetensors.read(inputPath, category: .activations)
        guard let batchMajor = contents.tensors["input"] else {
            throw ValidationError("\(inputPath) has no tensor named 'input' (it has \(contents.tensors.keys.sorted()))")
        }
        let expected = configuration.inputShape
        let isMLP = configuration.takesFeatureVectors
        let shapeOK = isMLP ? batchMajor.shape.count == 2 && batchMajor.shape[1] == expected.channels
                            : batchMajor.shape.count == 4 && batchMajor.shape[1] == expected.channels
        guard shapeOK, batchMajor.shape[0] >= 1 else {
            throw ValidationError("\(inputPath): 'input' has shape \(batchMajor.shape); \(configuration.name) takes"
                                  + (isMLP ? " (N, \(expected.channels))" : " (N, \(expected.channels), H, W)"))
        }
        // The images' H×W through the same check as train's input (too small for the
        // downsampling chain: ConfigurationError.inputTooSmall, not a crash in pooling).
        let s = batchMajor.shape
        let architecture = try ModelInput.checkInput(
            isMLP ? FeatureShape(features: s[1]) : FeatureShape(channels: s[1], height: s[2], width: s[3]),
            for: configuration, source: "\(inputPath): 'input' of shape \(s)")
        // Batch statistics of one value per channel: refused as train refuses them (BatchNormPlan).
        if mode == "train", s[0] < architecture.minimumTrainingBatch, let layer = architecture.sparsestBatchNorm?.name {
            throw TrainingError.batchNormNeedsMoreValues(
                option: "--mode train", value: s[0],
                reason: "batch norm \(layer) would see \(s[0]) value per channel for \(inputPath)'s 'input' of shape \(s)",
                hint: "give \(architecture.minimumTrainingBatch) or more images, or use --mode eval")
        }
        if mode == "train" { network.train() } else { network.eval() }
        // The MLP's input is already (F, N) after the swap, so it goes straight to the module.
        let x = Layout.swapLeadingDimensions(batchMajor)
        let out = isMLP ? Trainer.logits(network, flatFeatures: x) : Trainer.logits(network, images: x)
        let logits = Layout.swapLeadingDimensions(out)
        if let dumpLogits {
            try Safetensors.write(["logits": logits], metadata: ["model": configuration.name, "mode": mode], to: dumpLogits)
            print("logits \(logits.shape) (\(mode) mode) written to \(dumpLogits)")
        } else {
            let n = logits.shape[0], k = logits.shape[1]
            let values = logits.array
            for i in 0..<n {
                print((0..<k).map { String(format: "%.6f", values[i * k + $0]) }.joined(separator: " "))
            }
        }
    }
}

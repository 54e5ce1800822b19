import Datasets
import DenseNetModels
import Foundation
import Runtime

/// A trained model and what it needs to classify image files as in its evaluation: the
/// checkpoint's model configuration and class names (model-file metadata) and its run's data
/// normalisation (training-state metadata). Images are decoded, resized (shorter side) and
/// centre-cropped like an image folder's evaluation split (`FolderTransform`).
public final class Predictor {
    public let configuration: ModelConfiguration
    public let model: any Network
    /// By label; "class N" where the checkpoint names none.
    public let classNames: [String]
    public let normalization: Normalization?
    /// The evaluation resize of the shorter side.
    public let resize: Int
    /// What was assumed for lack of metadata, to tell the user.
    public private(set) var notes: [String] = []

    /// `checkpoint` is a run folder or its model.safetensors.
    public init(checkpoint: String) throws {
        let files = try TrainingCheckpoint.locate(checkpoint)
        guard let configuration = try TrainingCheckpoint.modelConfiguration(inFile: files.model) else {
            throw TrainingError.missingCheckpointMetadata(path: files.model, field: "model_configuration",
                                                          hint: "predict needs a checkpoint written by densenet train")
        }
        self.configuration = configuration
        model = try ModelFactory.build(configuration, policy: .shared)
        try TrainingCheckpoint.loadModel(model, from: files.model)
        model.eval()
        let classes = configuration.outputCount
        if let names = try TrainingCheckpoint.classNames(inFile: files.model) {
            classNames = names + (names.count..<max(classes, names.count)).map { "(unused \($0))" }
        } else {
            classNames = (0..<classes).map { "class \($0)" }
            notes.append("\(files.model) names no classes: reporting class numbers")
        }
        let channels = configuration.inputShape.channels
        let side = min(configuration.inputShape.height, configuration.inputShape.width)
        if FileManager.default.fileExists(atPath: files.state),
           let data = try? TrainingCheckpoint.readProgress(model: files.model, state: files.state).configuration.data {
            if case .folder(_, let options) = data {
                normalization = options.normalization(channels: channels)
                resize = options.resize ?? FolderTransform.evaluationResize(forCrop: side)
            } else {
                // Fixed-size data sets were resized whole to the model's input.
                normalization = data.normalization?.mean.count == channels ? data.normalization : nil
                resize = side
            }
        } else {
            normalization = ImageFolderOptions().normalization(channels: channels)
            resize = FolderTransform.evaluationResize(forCrop: side)
            notes.append("no training state beside \(files.model): assuming ImageNet normalisation and resize \(resize)")
        }
    }

    /// One image's top classes, most probable first.
    public struct Row: Sendable, Equatable {
        public var path: String
        public var classes: [String]
        public var probabilities: [Double]
    }

    /// The `top` most probable classes of every file (softmax of the logits), in the order of
    /// `paths`; a file that cannot be decoded is an error naming it, or with `skipBadImages`
    /// left out (and logged by `ImageFolder.log`).
    public func predict(_ paths: [String], top: Int, batchSize: Int = 32, skipBadImages: Bool = false) throws -> [Row] {
        precondition(top >= 1 && batchSize >= 1, "Predictor.predict: top \(top), batch \(batchSize)")
        guard !paths.isEmpty else { return [] }
        let shape = configuration.inputShape
        let files = ImageFiles(paths: paths, channels: shape.channels,
                               options: ImageFolderOptions(skipBadImages: skipBadImages, resize: resize))
        let dataset = try ImageDataset(files: files, labels: [Int32](repeating: 0, count: paths.count), channels: shape.channels,
                                       height: shape.height, width: shape.width, classCount: 1, classNames: [], path: "")
        let loader = DataLoader(dataset, options: DataLoaderOptions(batchSize: batchSize, shuffle: false,
                                                                    resize: ImageSize(height: shape.height, width: shape.width),
                                                                    normalization: normalization))
        var rows = [Row]()
        let k = min(top, configuration.outputCount)
        while let batch = try loader.next() {
            let logits = Trainer.logits(model, images: batch.images)   // (classes, N)
            let classes = logits.shape[0], n = logits.shape[1]
            let values = logits.array
            for (j, index) in batch.exampleIndices.enumerated() {
                let column = (0..<classes).map { Double(values[$0 * n + j]) }
                let largest = column.max()!
                let exps = column.map { exp($0 - largest) }
                let total = exps.reduce(0, +)
                let ranked = (0..<classes).sorted { exps[$0] > exps[$1] || (exps[$0] == exps[$1] && $0 < $1) }.prefix(k)
                rows.append(Row(path: paths[index], classes: ranked.map { classNames[$0] },
                                probabilities: ranked.map { exps[$0] / total }))
            }
        }
        return rows
    }

    /// The image files named by `inputs`: files as given, folders searched recursively for
    /// .png, .jpg and .jpeg files (sorted, hidden ones skipped).
    public static func imageFiles(_ inputs: [String]) throws -> [String] {
        var out = [String]()
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw DatasetError.missingFile(path: input, hint: "--images takes image files and folders of them")
            }
            if !isDirectory.boolValue { out.append(input); continue }
            guard let walker = FileManager.default.enumerator(atPath: input) else {
                throw DatasetError.badImageFolder(path: input, reason: "cannot list it")
            }
            var found = [String]()
            while let relative = walker.nextObject() as? String {
                let name = (relative as NSString).lastPathComponent
                if name.hasPrefix(".") { if walker.level > 0 { walker.skipDescendants() }; continue }
                if ImageFolder.extensions.contains((name as NSString).pathExtension.lowercased()) {
                    found.append((input as NSString).appendingPathComponent(relative))
                }
            }
            out += found.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
        return out
    }

    /// CSV: a header `file,class_1,probability_1,…` and one row per image (fields with commas,
    /// quotes or line breaks quoted as RFC 4180 says).
    public static func csv(_ rows: [Row], top: Int) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var lines = [(["file"] + (1...top).flatMap { ["class_\($0)", "probability_\($0)"] }).joined(separator: ",")]
        for row in rows {
            var cells = [field(row.path)]
            for i in 0..<top {
                cells += i < row.classes.count ? [field(row.classes[i]), String(format: "%.6f", row.probabilities[i])] : ["", ""]
            }
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

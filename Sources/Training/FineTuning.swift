import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// Starting a model from torchvision weights: a PyTorch `state_dict` saved as safetensors
/// (`safetensors.torch.save_file(model.state_dict(), "densenet121.safetensors")`), whose names
/// are torchvision's (`features.denseblock1.denselayer1.norm1.weight`, … `classifier.bias`, as
/// `TrainingCheckpoint` writes them; BatchNorm `num_batches_tracked` counters are skipped).
public enum FineTuning {
    /// What `initialize` did.
    public struct Report: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        /// Tensors copied from the file.
        public var loaded: Int
        /// Set when the file's classifier had another class count: (file's, model's). The
        /// model's classifier then keeps its fresh initialisation.
        public var replacedClassifier: (file: Int, model: Int)?

        public static func == (a: Report, b: Report) -> Bool {
            a.path == b.path && a.loaded == b.loaded && a.replacedClassifier?.file == b.replacedClassifier?.file
                && a.replacedClassifier?.model == b.replacedClassifier?.model
        }

        public var description: String {
            var text = "initialised from \(path): \(loaded) tensors"
            if let r = replacedClassifier {
                text += "; classifier replaced: the file's has \(r.file) classes, the model \(r.model)"
                    + " (new weights, trained from scratch)"
            }
            return text
        }
    }

    /// Which parameters stay fixed while training.
    public enum Freeze: String, CaseIterable, Codable, Sendable {
        case none
        /// Everything under `features.`: only the classifier trains. The features' batch
        /// normalisation also stays in evaluation mode (running statistics used, not updated),
        /// so the features are bit-identical after any number of steps.
        case features
    }

    /// Copies the file's tensors into `model` by name. Every parameter and buffer of the model
    /// must be in the file with its shape, and the file must have nothing else, except the
    /// classifier (`classifier.weight`, `classifier.bias`), whose class count may differ: it
    /// is then left as initialised and the report says so. Mismatches are one
    /// `CheckpointError.stateMismatch` naming every tensor concerned.
    public static func initialize(_ model: any Network, from path: String) throws -> Report {
        let contents = try Safetensors.read(path, category: .scratch)
        let targets = model.stateDict()
        let classifierNames: Set<String> = ["classifier.weight", "classifier.bias"]
        var missing = [String](), mismatched = [CheckpointError.ShapeMismatch]()
        var classifier: (file: Int, model: Int)? = nil
        var copies = [(Tensor, Tensor)]()
        for (name, target) in targets {
            guard let source = contents.tensors[name] else { missing.append(name); continue }
            if source.shape == target.shape { copies.append((target, source)); continue }
            if classifierNames.contains(name), source.rank == target.rank, source.rank >= 1,
               Array(source.shape.dropFirst()) == Array(target.shape.dropFirst()) {
                classifier = (source.shape[0], target.shape[0])
                continue
            }
            mismatched.append(CheckpointError.ShapeMismatch(name: name, expected: target.shape, found: source.shape))
        }
        let known = Set(targets.map(\.name))
        let unexpected = contents.tensors.keys.filter { !known.contains($0) }.sorted()
        guard missing.isEmpty, unexpected.isEmpty, mismatched.isEmpty else {
            throw CheckpointError.stateMismatch(path: path, missing: missing.sorted(), unexpected: unexpected, mismatched: mismatched)
        }
        for (target, source) in copies { target.assign(source) }
        return Report(path: path, loaded: copies.count, replacedClassifier: classifier)
    }

    /// The parameters the optimizer should update: all of them, or those outside `features.`.
    public static func trainableParameters(_ model: any Network, freeze: Freeze) -> [Parameter] {
        switch freeze {
        case .none: return model.parameters
        case .features: return model.namedParameters().filter { !$0.name.hasPrefix("features.") }.map(\.parameter)
        }
    }

    /// The modules to keep in evaluation mode while training (`Trainer.frozenModules`).
    public static func frozenModules(_ model: any Network, freeze: Freeze) -> [Module] {
        switch freeze {
        case .none: return []
        case .features: return model.children.filter { $0.name == "features" }.map(\.module)
        }
    }
}

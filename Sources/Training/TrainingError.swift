import Foundation

/// What a user can get wrong when training or evaluating: each case says what is wrong and
/// what to do instead.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// `--data` text that names no dataset.
    case unknownDataset(String)
    /// The model's input channels differ from the data's.
    case channelMismatch(model: String, modelChannels: Int, data: String, dataChannels: Int)
    /// Fewer classifier outputs than the dataset has classes.
    case tooFewClasses(classes: Int, dataset: String, datasetClasses: Int)
    /// An option value out of range.
    case invalidOption(String, reason: String)
    /// The planner predicts more than `--max-memory`.
    case exceedsMemoryLimit(predictedBytes: Int, limitBytes: Int)
    /// A checkpoint without a metadata field this command needs.
    case missingCheckpointMetadata(path: String, field: String, hint: String)
    case invalidCheckpointMetadata(field: String, reason: String)
    /// `--resume` given a path with no checkpoint.
    case noCheckpoint(path: String)
    /// `--resume` found checkpoints, none of them sound; `reasons` says what is wrong with each.
    case noUsableCheckpoint(path: String, reasons: [String])
    /// model.safetensors and training-state.safetensors were written at different steps.
    case checkpointPairMismatch(modelPath: String, modelStep: String, statePath: String, stateStep: String)
    /// A field of a saved training state that is impossible on its own or for this run.
    case invalidTrainingState(path: String, field: String, value: String, reason: String)
    /// A parameter, buffer or loss that is NaN or infinite where a checkpoint would be written.
    case nonFiniteState(what: String, step: Int)
    /// A training step whose loss is NaN or infinite: training stops before it saves.
    case nonFiniteLoss(step: Int, epoch: Int, loss: Float)
    /// The test loss after epoch `epoch` is NaN or infinite (the weights diverged although each
    /// training loss was finite, e.g. `--lr 1e38`): the run stops before writing that epoch.
    case nonFiniteTestLoss(epoch: Int, loss: Double)
    /// A training batch would give a batch norm one value per channel (PyTorch: "Expected more
    /// than 1 value per channel when training").
    case batchNormNeedsMoreValues(option: String, value: Int, reason: String, hint: String)
    /// A resumed run given an option that contradicts the saved configuration.
    case resumeConflict(option: String, saved: String, given: String)
    /// A resumed run that has already trained `epochs` epochs.
    case alreadyFinished(epochs: Int, path: String)

    public var description: String {
        switch self {
        case .unknownDataset(let text):
            return "unknown dataset '\(text)': use fashion-mnist, cifar10:DIR (cifar-10-batches-bin), cifar100:DIR (cifar-100-binary)"
                + " or folder:DIR[,val-fraction=F][,skip-bad-images] (DIR/train/<class>/*.png|jpg and DIR/val/<class>/*)"
        case .channelMismatch(let model, let mc, let data, let dc):
            return "\(model) takes \(mc)-channel input but \(data) has \(dc) channel(s): give --input \(dc)xHxW"
        case .tooFewClasses(let classes, let dataset, let dc):
            return "--classes \(classes) is fewer than the \(dc) classes of \(dataset): give --classes \(dc) or more"
        case .invalidOption(let option, let reason):
            return "\(option): \(reason)"
        case .exceedsMemoryLimit(let predicted, let limit):
            return "the planner predicts a peak of \(predicted) bytes, more than --max-memory \(limit):"
                + " use a smaller --batch, a leaner --strategy (minimal), or a smaller --input"
        case .missingCheckpointMetadata(let path, let field, let hint):
            return "\(path): checkpoint metadata has no '\(field)'; \(hint)"
        case .invalidCheckpointMetadata(let field, let reason):
            return "checkpoint metadata '\(field)' is invalid: \(reason)"
        case .noCheckpoint(let path):
            return "\(path): no checkpoint here: --resume takes a run folder (with checkpoints/, or model.safetensors"
                + " and training-state.safetensors), a checkpoint folder, or one of those files"
        case .noUsableCheckpoint(let path, let reasons):
            return "\(path): no checkpoint here can be resumed (\(reasons.joined(separator: "; ")));"
                + " start a new run, or restore a checkpoint folder from a backup"
        case .checkpointPairMismatch(let mp, let ms, let sp, let ss):
            return "\(mp) (step \(ms)) and \(sp) (step \(ss)) were not saved together (was a save interrupted?);"
                + " restore both files from the same save"
        case .invalidTrainingState(let path, let field, let value, let reason):
            return "\(path): \(field) is \(value): \(reason); the training state is damaged or was edited"
                + " (resume from another checkpoint, or start a new run)"
        case .nonFiniteState(let what, let step):
            return "not saving a checkpoint at step \(step): \(what) is not finite (the previous checkpoint is kept);"
                + " the run diverged: resume from the last checkpoint with a lower --lr"
        case .nonFiniteLoss(let step, let epoch, let loss):
            return "the training loss is \(loss) at step \(step) (epoch \(epoch)): the run diverged and stops without saving"
                + " (the last checkpoint is kept); resume from it with a lower --lr, or use warm-up (--warmup-epochs)"
        case .nonFiniteTestLoss(let epoch, let loss):
            return "--lr: the test loss is \(loss) after epoch \(epoch): the weights diverged; the run stops without saving"
                + " this epoch (the last checkpoint is kept); resume from it with a lower --lr, or use warm-up (--warmup-epochs)"
        case .batchNormNeedsMoreValues(let option, let value, let reason, let hint):
            return "\(option) \(value): expected more than 1 value per channel when training: \(reason); \(hint)"
        case .resumeConflict(let option, let saved, let given):
            return "\(option) \(given) differs from the resumed run's \(saved): a resumed run keeps its configuration"
                + " (start a new run with --out to change it)"
        case .alreadyFinished(let epochs, let path):
            return "\(path): the run has already trained \(epochs) epoch(s); give a larger --epochs to continue it"
        }
    }
}

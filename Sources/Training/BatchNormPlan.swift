import DenseNetModels
import Foundation

/// How a run's training batches meet batch norm's need for more than one value per channel
/// (`Architecture.minimumTrainingBatch`), decided before the run starts from the model's
/// layers and the loader's batch sizes: a batch size that can never work is refused (as
/// PyTorch refuses it, "Expected more than 1 value per channel when training"); a last partial
/// batch that is too small is dropped, like PyTorch's `drop_last`, and the run's log says so.
public struct BatchNormPlan: Equatable, Sendable {
    /// For `DataLoaderOptions.minimumLastBatch` of the training loader.
    public var minimumLastBatch: Int
    /// What the log says when a partial batch is dropped.
    public var note: String?

    public static func check(model: ModelConfiguration, exampleCount: Int, batchSize: Int) throws -> BatchNormPlan {
        let architecture = try Architecture(model)
        let minimum = architecture.minimumTrainingBatch
        guard minimum > 1, let layer = architecture.sparsestBatchNorm?.name else {
            return BatchNormPlan(minimumLastBatch: 1, note: nil)
        }
        let place = "batch norm \(layer) of \(model.name) (one value per channel per example)"
        guard batchSize >= minimum else {
            throw TrainingError.batchNormNeedsMoreValues(option: "--batch", value: batchSize,
                                                         reason: "\(place) would see \(batchSize) value per channel",
                                                         hint: "use --batch \(minimum) or more")
        }
        guard exampleCount >= minimum else {
            throw TrainingError.batchNormNeedsMoreValues(option: "--limit", value: exampleCount,
                                                         reason: "an epoch of \(exampleCount) training example gives \(place)"
                                                         + " \(exampleCount) value per channel",
                                                         hint: "train on \(minimum) examples or more")
        }
        let rest = exampleCount % batchSize
        guard rest > 0, rest < minimum else { return BatchNormPlan(minimumLastBatch: minimum, note: nil) }
        return BatchNormPlan(minimumLastBatch: minimum, note:
            "the last batch of each epoch would hold \(rest) example, one value per channel for \(place):"
            + " it is dropped, like PyTorch's drop_last (\(exampleCount - rest) of \(exampleCount) examples per epoch are used)")
    }
}

// Batch norm in training mode needs more than one value per channel (PyTorch refuses one:
// "Expected more than 1 value per channel when training", torch/nn/functional.py
// `_verify_batch_size`); the unbiased running variance divides by n − 1
// (Sources/Kernels/BatchNorm.swift, `updateRunningStatistics`). A batch norm sees N·H·W values
// per channel, so the batch sizes a model can train on follow from its layers' shapes.

extension Architecture {
    /// The batch-norm layer that sees the fewest values per channel for one example (the H×W
    /// of its input; 1 for a batch norm over features), or nil when the model has none.
    public var sparsestBatchNorm: (name: String, valuesPerExample: Int)? {
        var best: (name: String, valuesPerExample: Int)? = nil
        for layer in layers {
            guard case .batchNorm = layer.kind else { continue }
            let (v, overflow) = layer.inputShape.height.multipliedReportingOverflow(by: layer.inputShape.width)
            let values = overflow ? Int.max : v
            if best == nil || values < best!.valuesPerExample { best = (layer.name, values) }
        }
        return best
    }

    /// The smallest training batch every batch norm of the model can normalise: 2 when one
    /// sees a single value per channel per example (a 1×1 feature map, or features), else 1.
    public var minimumTrainingBatch: Int {
        guard let sparsest = sparsestBatchNorm, sparsest.valuesPerExample < 2 else { return 1 }
        return 2
    }
}

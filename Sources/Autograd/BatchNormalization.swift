import Kernels
import Runtime

/// What batch normalisation keeps between steps: the running statistics, their momentum and
/// eps, and the count of training-mode forward passes (PyTorch's `num_batches_tracked`).
///
/// It also owns the one rule of batch normalisation (Ioffe & Szegedy 2015, arXiv 1502.03167) that
/// every caller follows, the autograd op (`Functional.batchNorm`) and the fused dense block of
/// the shared strategies (DenseNetModels/DenseBlock+SharedStorage.swift) alike: training mode
/// normalises with the batch statistics and updates the running ones once per forward pass,
/// never during a checkpoint recompute (`Autograd.isRecomputing`: the recompute would otherwise
/// count the batch twice, the known fault of PyTorch's checkpointed DenseNet); evaluation mode
/// normalises with the running statistics.
public final class BatchNormState {
    public let runningMean: Tensor
    public let runningVar: Tensor
    public let momentum: Float
    public let eps: Float
    /// Training-mode forward passes counted so far.
    public internal(set) var batchesTracked = 0

    /// Fresh statistics for `channels` channels: mean 0, variance 1 (PyTorch's initial values).
    public init(channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        precondition(channels > 0, "BatchNormState: channels must be positive, got \(channels)")
        runningMean = Tensor.zeros([channels], category: .parameters)
        runningVar = Tensor.filled([channels], 1, category: .parameters)
        self.momentum = momentum
        self.eps = eps
    }

    public var channels: Int { runningMean.count }

    /// y = γ·(x − mean)·invStd + β, then ReLU if `relu`, with the statistics the mode asks for
    /// written into `mean` and `invStd` (C each) for the backward pass.
    // x, y (C, ...); gamma, beta, mean, invStd (C).
    public func normalize(_ x: Tensor, gamma: Tensor, beta: Tensor, training: Bool, relu: Bool,
                          into y: Tensor, mean: Tensor, invStd: Tensor) {
        precondition(x.shape.first == channels, "BatchNormState.normalize: x \(x.shape) for \(channels) channels")
        guard training, BatchNormState.statisticsReducer == nil || DryRun.isActive else {
            // Evaluation, or synchronised over ranks: the statistics by the rule, then y with them.
            statistics(x, training: training, mean: mean, invStd: invStd)
            BatchNorm.forwardWithStatistics(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu, into: y)
            return
        }
        // This process's batch: each channel's statistics and y in one pass while it is in cache.
        BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: eps, relu: relu, into: y, mean: mean, invStd: invStd)
        countBatch(mean: mean, invStd: invStd, count: x.count / channels)
    }

    /// `normalize` in training mode of the concatenation of `xs` along channels, read where the
    /// pieces lie (`BatchNorm.forwardTraining(concatenating:)`): the same numbers, one running
    /// update. Not for synchronised statistics, whose reduction needs one tensor
    /// (`Functional.concatBatchNorm` concatenates then).
    // xs[i] (C_i, ...); y (C, ...); gamma, beta, mean, invStd (C).
    public func normalizeTraining(concatenating xs: [Tensor], gamma: Tensor, beta: Tensor, relu: Bool,
                                  into y: Tensor, mean: Tensor, invStd: Tensor) {
        precondition(y.shape.first == channels, "BatchNormState.normalizeTraining(concatenating:): y \(y.shape) for \(channels) channels")
        precondition(BatchNormState.statisticsReducer == nil || DryRun.isActive,
                     "BatchNormState.normalizeTraining(concatenating:): synchronised statistics need one input tensor")
        BatchNorm.forwardTraining(concatenating: xs, gamma: gamma, beta: beta, eps: eps, relu: relu, into: y,
                                  mean: mean, invStd: invStd)
        countBatch(mean: mean, invStd: invStd, count: y.count / channels)
    }

    /// One training-mode batch seen with these statistics over `count` positions per channel:
    /// the running statistics' update and the batch count, never during a recompute.
    private func countBatch(mean: Tensor, invStd: Tensor, count: Int) {
        guard !Autograd.isRecomputing else { return }
        BatchNorm.updateRunningStatistics(runningMean: runningMean, runningVar: runningVar, mean: mean,
                                          invStd: invStd, eps: eps, momentum: momentum, count: count)
        batchesTracked += 1
    }

    /// The statistics `normalize` would use, by the same rule (and with the same running update),
    /// without writing y: for a consumer that normalises as it reads
    /// (`Conv2d.pointwiseForwardNormalized`).
    // x (C, ...); mean, invStd (C).
    public func statistics(_ x: Tensor, training: Bool, mean: Tensor, invStd: Tensor) {
        precondition(x.shape.first == channels, "BatchNormState.statistics: x \(x.shape) for \(channels) channels")
        guard training else {
            BatchNorm.evaluationStatistics(runningMean: runningMean, runningVar: runningVar, eps: eps,
                                           mean: mean, invStd: invStd)
            return
        }
        let count: Int
        if let reducer = BatchNormState.statisticsReducer, !DryRun.isActive {
            count = synchronizedStatistics(x, reducer: reducer, mean: mean, invStd: invStd)
        } else {
            BatchNorm.trainingStatistics(x, eps: eps, mean: mean, invStd: invStd)
            count = x.count / channels
        }
        countBatch(mean: mean, invStd: invStd, count: count)
    }

    /// As `statistics`, for an input whose first channels were the whole input of an earlier
    /// batch norm of this forward pass (a dense block's layers share their input's prefix):
    /// in training mode their batch statistics are `known`'s, copied instead of taken again,
    /// the same numbers (the same function of the same values, BatchNorm.trainingStatistics), and
    /// only the new channels are read. Synchronised or in evaluation, as `statistics`.
    // x (C, ...); mean, invStd (C); known.mean, known.invStd (K ≤ C).
    public func statistics(_ x: Tensor, training: Bool, mean: Tensor, invStd: Tensor, knownPrefix known: (mean: Tensor, invStd: Tensor)?) {
        guard training, let known, BatchNormState.statisticsReducer == nil || DryRun.isActive else {
            return statistics(x, training: training, mean: mean, invStd: invStd)
        }
        let k = known.mean.count, c = channels
        precondition(x.shape.first == c && k <= c && known.invStd.count == k,
                     "BatchNormState.statistics: x \(x.shape), known prefix of \(k) channels, for \(c) channels")
        mean.channels(0..<k).assign(known.mean)
        invStd.channels(0..<k).assign(known.invStd)
        if k < c {
            BatchNorm.trainingStatistics(x.channels(k..<c), eps: eps, mean: mean.channels(k..<c), invStd: invStd.channels(k..<c))
        }
        countBatch(mean: mean, invStd: invStd, count: x.count / c)
    }

    /// The backward of `normalize` in the same mode: through the batch statistics in training,
    /// with them held constant in evaluation. Accumulates into dx, dGamma, dBeta; with
    /// `overwriteDx`, writes dx without reading it (a gradient buffer nothing was added to yet).
    /// Every tensor may cover a block of the channels instead of all (their slices,
    /// `channels(range)`): channels are independent, but under synchronised batch norm each call
    /// is one reduction over the ranks.
    // dy, x, dx (C, ...); gamma, beta, mean, invStd, dGamma, dBeta (C).
    public func normalizeBackward(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                                  training: Bool, relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?,
                                  overwriteDx: Bool = false) {
        if training, let reducer = BatchNormState.statisticsReducer, !DryRun.isActive {
            synchronizedBackward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                                 reducer: reducer, dx: dx, dGamma: dGamma, dBeta: dBeta, overwriteDx: overwriteDx)
        } else if training {
            BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                               dx: dx, dGamma: dGamma, dBeta: dBeta, overwriteDx: overwriteDx)
        } else {
            BatchNorm.backwardWithFixedStatistics(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                  relu: relu, dx: dx, dGamma: dGamma, dBeta: dBeta, overwriteDx: overwriteDx)
        }
    }
}

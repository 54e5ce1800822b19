import Kernels
import Runtime

/// Sums per-channel batch statistics over the ranks of a data-parallel job, for synchronised
/// batch norm. A training run over several processes installs one as
/// `BatchNormState.statisticsReducer` (Sources/Training/DataParallelTraining.swift); autograd
/// itself knows nothing of MPI.
public protocol BatchNormStatisticsReducer: AnyObject {
    /// Replaces every value by its sum over all ranks. Every rank makes the same calls in the
    /// same order (one model, one step). A failure cannot be recovered from (the ranks no longer
    /// agree), so an implementation ends the job rather than return.
    func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>)
}

/// Synchronised batch norm (as PyTorch's `SyncBatchNorm`): while a reducer is installed,
/// training-mode statistics are those of the global batch, the union of every rank's slice, and
/// so are the two per-channel sums of the backward pass, so that N ranks compute what one
/// process computes with the whole batch:
/// - forward: per-channel Σx and the position count are summed over the ranks, giving the global
///   mean; then Σ(x − mean)² is summed, giving the global biased variance (the two passes of
///   `BatchNorm.forwardTraining`, each reduced). Running statistics take the global unbiased
///   variance (count = the global positions per channel).
/// - backward: Σg and Σg·xhat and the count are summed over the ranks for the input gradient;
///   dγ and dβ get this rank's own sums (the gradient averaging adds the ranks' parts up).
/// - recompute (`Autograd.checkpoint`): the forward saves its global statistics for the
///   segment's recompute (`Autograd.saveForRecompute`), which reuses them: no second reduction,
///   no second running-statistics update. The fused dense block re-applies its saved statistics
///   itself (`BatchNorm.forwardWithStatistics`) and never calls `normalize` in backward.
/// Three small all-reduces per batch norm per step (two forward, one backward); none in a dry
/// run, where kernels compute nothing.
extension BatchNormState {
    /// The reducer of synchronised batch norm; nil (the default) normalises with this process's
    /// batch alone. Process-wide: set it before a step, never during one.
    nonisolated(unsafe) public static var statisticsReducer: BatchNormStatisticsReducer?

    /// The global statistics of x into mean and invStd; returns the global positions per channel.
    func synchronizedStatistics(_ x: Tensor, reducer: BatchNormStatisticsReducer, mean: Tensor, invStd: Tensor) -> Int {
        let c = channels
        let localCount = x.count / c
        if Autograd.isRecomputing, let saved = Autograd.takeSavedForRecompute() {
            precondition(saved.count == 2 * c + 1, "BatchNormState: the recompute found \(saved.count) saved values for \(c) channels")
            for i in 0..<c { mean.pointer[i] = saved[i]; invStd.pointer[i] = saved[c + i] }
            return Int(saved[2 * c])
        }
        // First pass: Σx and the count, summed over the ranks.
        var sums = [Double](repeating: 0, count: c + 1)
        sums.withUnsafeMutableBufferPointer { buffer in
            BatchNorm.channelSums(x, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<c]))
            buffer[c] = Double(localCount)
            reducer.sumOverRanks(buffer)
        }
        let count = Int(sums[c])
        precondition(count > 0, "BatchNormState: no position in the global batch")
        let mu = sums.withUnsafeBufferPointer { BatchNorm.means(sums: UnsafeBufferPointer(rebasing: $0[0..<c]), count: count, into: mean) }
        // Second pass: Σ(x − mean)² about the global mean, summed over the ranks.
        var deviations = [Double](repeating: 0, count: c)
        deviations.withUnsafeMutableBufferPointer { buffer in
            BatchNorm.channelSquaredDeviations(x, center: mean, into: buffer)
            reducer.sumOverRanks(buffer)
        }
        deviations.withUnsafeBufferPointer {
            BatchNorm.inverseStandardDeviations(deviations: $0, exactMeans: mu, count: count, eps: eps, mean: mean, into: invStd)
        }
        // Float holds counts up to 2^24 exactly; a batch-norm row is far shorter.
        Autograd.saveForRecompute(mean.array + invStd.array + [Float(count)])
        return count
    }

    func synchronizedBackward(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                              relu: Bool, reducer: BatchNormStatisticsReducer, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?,
                              overwriteDx: Bool) {
        // dy may be a block of the channels (DenseBlock+SharedStorage.swift takes the gradient in blocks).
        let c = dy.shape.first ?? 0
        let sumDy = Tensor(shape: [c], category: .scratch), sumDyXhat = Tensor(shape: [c], category: .scratch)
        BatchNorm.backwardSums(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                               sumDy: sumDy, sumDyXhat: sumDyXhat)
        // This rank's part of dγ and dβ, before the sums become global.
        if let dGamma { Elementwise.accumulate(sumDyXhat, into: dGamma) }
        if let dBeta { Elementwise.accumulate(sumDy, into: dBeta) }
        guard let dx else { return }
        let count = sumOverRanks(sumDy: sumDy, sumDyXhat: sumDyXhat, count: x.count / c, reducer: reducer)
        BatchNorm.backwardInput(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                                sumDy: sumDy, sumDyXhat: sumDyXhat, count: count, dx: dx, overwriteDx: overwriteDx)
    }

    /// Replaces this rank's backward sums Σg and Σg·xhat (one per channel) by their sums over the
    /// ranks, in one reduction with the positions per channel; returns the global positions.
    func sumOverRanks(sumDy: Tensor, sumDyXhat: Tensor, count: Int, reducer: BatchNormStatisticsReducer) -> Int {
        let c = sumDy.count
        var totals = [Double](repeating: 0, count: 2 * c + 1)
        for i in 0..<c { totals[i] = Double(sumDy.pointer[i]); totals[c + i] = Double(sumDyXhat.pointer[i]) }
        totals[2 * c] = Double(count)
        totals.withUnsafeMutableBufferPointer { reducer.sumOverRanks($0) }
        for i in 0..<c { sumDy.pointer[i] = Float(totals[i]); sumDyXhat.pointer[i] = Float(totals[c + i]) }
        return Int(totals[2 * c])
    }
}

import Runtime

// Batch norm over a batch split across the ranks of a data-parallel job (synchronised batch
// norm): the per-channel reductions of BatchNorm.swift taken apart, so that a caller can sum
// them over the ranks between the halves. The statistics follow `forwardTraining`'s two passes
// (the mean from the sums, then squared deviations from that mean), each reduced over the ranks,
// so N ranks compute what one process computes from the whole batch up to summation order.

extension BatchNorm {
    /// sums[c] = Σ x[c, ...] (in Double across blocks, as `forwardTraining`). Does nothing in a dry run.
    // x (C, ...); sums: C values.
    public static func channelSums(_ x: Tensor, into sums: UnsafeMutableBufferPointer<Double>) {
        let (channels, columns) = check("channelSums", x, [], sameAsX: [])
        precondition(sums.count == channels, "BatchNorm.channelSums: \(sums.count) sums for x \(x.shape)")
        if DryRun.isActive { return }
        let px = x.pointer, ps = sums.baseAddress!
        Elementwise.forRanges(channels, unitCost: columns) { cs in
            for c in cs { ps[c] = Elementwise.sumDouble(px + c * columns, columns) }
        }
    }

    /// deviations[c] = Σ (x[c, ...] − center[c])² in Double. Does nothing in a dry run.
    // x (C, ...); center (C); deviations: C values.
    public static func channelSquaredDeviations(_ x: Tensor, center: Tensor,
                                                into deviations: UnsafeMutableBufferPointer<Double>) {
        let (channels, columns) = check("channelSquaredDeviations", x, [("center", center)], sameAsX: [])
        precondition(deviations.count == channels, "BatchNorm.channelSquaredDeviations: \(deviations.count) values for x \(x.shape)")
        if DryRun.isActive { return }
        let px = x.pointer, pc = center.pointer, pd = deviations.baseAddress!
        Elementwise.forRanges(channels, unitCost: columns) { cs in
            for c in cs { pd[c] = Elementwise.sumSquaredDeviations(px + c * columns, columns, center: pc[c]) }
        }
    }

    /// The centre of the second pass from the global sums: mean[c] = Float(sums[c] / count).
    /// Returns the Double means (whose rounding `statistics(...)` removes from the variance).
    public static func means(sums: UnsafeBufferPointer<Double>, count: Int, into mean: Tensor) -> [Double] {
        precondition(count > 0 && mean.count == sums.count && mean.isContiguous,
                     "BatchNorm.means: \(sums.count) sums, count \(count), mean \(mean.shape)")
        let mu = sums.map { $0 / Double(count) }
        if DryRun.isActive { return mu }
        for c in mu.indices { mean.pointer[c] = Float(mu[c]) }
        return mu
    }

    /// invStd[c] = 1/sqrt(var + eps) with the biased variance var = deviations[c]/count −
    /// (mu[c] − mean[c])², the deviations being taken about the Float centre `mean` (as
    /// `forwardTraining` does for one process).
    public static func inverseStandardDeviations(deviations: UnsafeBufferPointer<Double>, exactMeans mu: [Double],
                                                 count: Int, eps: Float, mean: Tensor, into invStd: Tensor) {
        precondition(count > 0 && deviations.count == mu.count && mean.count == mu.count && invStd.count == mu.count,
                     "BatchNorm.inverseStandardDeviations: sizes \(deviations.count), \(mu.count), \(mean.shape), \(invStd.shape)")
        if DryRun.isActive { return }
        for c in mu.indices {
            let offset = mu[c] - Double(mean.pointer[c])
            let variance = max(deviations[c] / Double(count) - offset * offset, 0)
            invStd.pointer[c] = Float(1 / (variance + Double(eps)).squareRoot())
        }
    }

    /// sumDy[c] = Σ g and sumDyXhat[c] = Σ g·xhat over this rank's part of the batch (g and xhat
    /// as in `accumulateBackwardSums`): the two per-channel reductions of the training-mode
    /// backward, overwritten. Does nothing in a dry run.
    // dy, x (C, ...); gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func backwardSums(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                                    relu: Bool, sumDy: Tensor, sumDyXhat: Tensor) {
        let (channels, columns) = check("backwardSums", x, [("gamma", gamma), ("beta", beta), ("mean", mean),
                                                           ("invStd", invStd), ("sumDy", sumDy), ("sumDyXhat", sumDyXhat)],
                                        sameAsX: [("dy", dy)])
        if DryRun.isActive { return }
        sumDy.zero()
        sumDyXhat.zero()
        guard columns > 0 else { return }
        accumulateBackwardSums(dy: dy.pointer, x: x.pointer, channels: channels, columns: columns, ld: columns,
                               gamma: gamma.pointer, beta: beta.pointer, mean: mean.pointer, invStd: invStd.pointer,
                               relu: relu, sumDy: sumDy.pointer, sumDyXhat: sumDyXhat.pointer)
    }

    /// dx += gamma·invStd·(g − sumDy/count − xhat·sumDyXhat/count) with totals over the whole
    /// (global) batch of `count` positions per channel (dx = with `overwriteDx`). Does nothing in
    /// a dry run.
    // dy, x, dx (C, ...); gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func backwardInput(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                                     relu: Bool, sumDy: Tensor, sumDyXhat: Tensor, count: Int, dx: Tensor,
                                     overwriteDx: Bool = false) {
        let (channels, columns) = check("backwardInput", x, [("gamma", gamma), ("beta", beta), ("mean", mean),
                                                            ("invStd", invStd), ("sumDy", sumDy), ("sumDyXhat", sumDyXhat)],
                                        sameAsX: [("dy", dy), ("dx", dx)])
        if DryRun.isActive || columns == 0 { return }
        accumulateInputGradient(dy: dy.pointer, x: x.pointer, channels: channels, columns: columns, ld: columns,
                                gamma: gamma.pointer, beta: beta.pointer, mean: mean.pointer, invStd: invStd.pointer,
                                relu: relu, sumDy: sumDy.pointer, sumDyXhat: sumDyXhat.pointer, count: count,
                                dx: dx.pointer, dxLd: columns, overwrite: overwriteDx)
    }
}

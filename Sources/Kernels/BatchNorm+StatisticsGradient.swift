import Runtime

// The part of batch norm's training-mode input gradient that flows through the batch mean and
// variance, kept apart so that several batch norms with the same statistics can add theirs up
// and apply it once (Conv2d+NormalizedInputGradient.swift says where):
//
//     dx = gamma·invStd·g  −  invStd·(gamma·Σg/count + xhat·gamma·Σ(g·xhat)/count)
//          (fixed-statistics part)   (statistics part: a + xhat·b, times invStd)
//
// With a = Σ over the batch norms of gamma·Σg/count and b = Σ gamma·Σ(g·xhat)/count, the
// statistics parts of all of them are dx −= invStd·(a + xhat·b).
extension BatchNorm {
    /// a += gamma·sumDy/count, b += gamma·sumDyXhat/count: one batch norm's share of the
    /// per-channel terms of `accumulateStatisticsGradient`, from the sums of its backward
    /// (`Conv2d.pointwiseInputGradientNormalized`, `backwardSums`) over `count` positions.
    // gamma, sumDy, sumDyXhat, a, b (C).
    public static func addStatisticsGradientTerms(gamma: Tensor, sumDy: Tensor, sumDyXhat: Tensor, count: Int,
                                                  a: Tensor, b: Tensor) {
        let (channels, _) = check("addStatisticsGradientTerms", gamma, [("sumDy", sumDy), ("sumDyXhat", sumDyXhat),
                                                                          ("a", a), ("b", b)], sameAsX: [])
        precondition(count > 0, "BatchNorm.addStatisticsGradientTerms: count \(count) must be positive")
        if DryRun.isActive { return }
        let inverseCount = 1 / Float(count)
        let pg = gamma.pointer, psd = sumDy.pointer, psx = sumDyXhat.pointer, pa = a.pointer, pb = b.pointer
        for c in 0..<channels {
            pa[c] += pg[c] * psd[c] * inverseCount
            pb[c] += pg[c] * psx[c] * inverseCount
        }
    }

    /// dx −= invStd·(a + xhat·b), xhat = (x − mean)·invStd: the statistics part of the input
    /// gradient of the batch norms whose terms a and b hold (`addStatisticsGradientTerms`).
    // x, dx (C, N, H, W); mean, invStd, a, b (C).
    public static func accumulateStatisticsGradient(x: Tensor, mean: Tensor, invStd: Tensor, a: Tensor, b: Tensor,
                                                    dx: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let (channels, columns) = check("accumulateStatisticsGradient", x,
                                        [("mean", mean), ("invStd", invStd), ("a", a), ("b", b)], sameAsX: [("dx", dx)])
        if columns == 0 || DryRun.isActive { return }
        let px = x.pointer, pdx = dx.pointer, pm = mean.pointer, pi = invStd.pointer, pa = a.pointer, pb = b.pointer
        Elementwise.forRanges(channels, unitCost: 3 * columns) { cs in
            for c in cs {
                // dx −= invStd·a + (x − mean)·invStd²·b
                let offset = -pi[c] * pa[c], slope = -pi[c] * pi[c] * pb[c]
                statisticsGradientRow(x: px + c * columns, count: columns, mean: pm[c], offset: offset, slope: slope,
                                      dx: pdx + c * columns)
            }
        }
    }

    // dx (count) += offset + (x − mean)·slope.
    @inline(__always)
    static func statisticsGradientRow(x: UnsafePointer<Float>, count: Int, mean: Float, offset: Float, slope: Float,
                                      dx: UnsafeMutablePointer<Float>) {
        let m = V(repeating: mean), o = V(repeating: offset), s = V(repeating: slope)
        let lanes = Elementwise.lanes
        var i = 0
        while i + lanes <= count {
            Elementwise.store(Elementwise.load(dx, i) + o + (Elementwise.load(x, i) - m) * s, dx, i)
            i += lanes
        }
        while i < count { dx[i] += offset + (x[i] - mean) * slope; i += 1 }
    }

    /// `accumulateStatisticsGradient` one element at a time in Double, for tests.
    public static func accumulateStatisticsGradientReference(x: Tensor, mean: Tensor, invStd: Tensor, a: Tensor,
                                                             b: Tensor, dx: Tensor) {
        let (channels, columns, v) = rows(x)
        let mu = doubles(mean), inv = doubles(invStd), terms = (doubles(a), doubles(b))
        var out = dx.array.map(Double.init)
        for c in 0..<channels {
            for j in 0..<columns {
                let xhat = (v[c * columns + j] - mu[c]) * inv[c]
                out[c * columns + j] -= inv[c] * (terms.0[c] + xhat * terms.1[c])
            }
        }
        store(out, into: dx)
    }
}

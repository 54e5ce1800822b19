import Runtime

/// A DenseNet transition's BN → ReLU → 2x2/2 average pooling as one pass whose normalised input
/// is never stored: the forward writes only the pooled quarter, the backward makes the
/// gradient of each normalised value from the pooled gradient and the input again. Under
/// `fused-normalization` (MemoryPolicy.swift) the transitions run it, so the full-size BN/ReLU
/// output of a block's last features (the largest scratch of a transition's recompute) is gone.
///
/// The normalised value is `BatchNorm.affine` and each window's sum is taken in the order of
/// `Pooling.avgForward`, so the forward equals the unfused pair bit for bit. Pooling follows
/// PyTorch's floor mode: a trailing odd row or column is in no window (its pooled gradient is 0)
/// but is in the batch statistics. The references are the unfused pair
/// (`BatchNormAveragePoolTests`).
extension BatchNorm {
    /// The pooled shape and per-channel sizes after the shared checks: (channels, n, h, w, ho, wo).
    static func checkPooled(_ name: String, x: Tensor, pooled: Tensor, _ perChannel: [(String, Tensor)])
        -> (c: Int, n: Int, h: Int, w: Int, ho: Int, wo: Int) {
        precondition(x.rank == 4 && x.isContiguous, "BatchNorm.\(name): x \(x.shape) must be a contiguous (C, N, H, W) tensor")
        let (c, n, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(h >= 2 && w >= 2, "BatchNorm.\(name): x \(x.shape) is smaller than the 2x2 window")
        let (ho, wo) = (h / 2, w / 2)
        precondition(pooled.isContiguous && pooled.shape == [c, n, ho, wo],
                     "BatchNorm.\(name): pooled \(pooled.shape) must be [\(c), \(n), \(ho), \(wo)] for x \(x.shape)")
        for (label, t) in perChannel {
            precondition(t.count == c && t.isContiguous, "BatchNorm.\(name): \(label) \(t.shape) vs x \(x.shape): need \(c) values")
        }
        return (c, n, h, w, ho, wo)
    }

    /// y = avgpool2x2(relu(gamma·(x − mean)·invStd + beta)), the normalised x never stored: each
    /// pair of input rows is normalised by the row kernel into a two-row buffer on the stack,
    /// then pooled.
    // x (C, N, H, W); gamma, beta, mean, invStd (C); y (C, N, H/2, W/2).
    public static func normalizedAveragePoolForward(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                    invStd: Tensor, into y: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let s = checkPooled("normalizedAveragePoolForward", x: x, pooled: y,
                            [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd)])
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer, pg = gamma.pointer, pb = beta.pointer, pm = mean.pointer, pi = invStd.pointer
        Elementwise.forRanges(s.c * s.n, unitCost: s.h * s.w) { planes in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * s.w) { rows in
                let t0 = rows.baseAddress!, t1 = t0 + s.w
                for plane in planes {
                    let ch = plane / s.n
                    let m = pm[ch], scale = pg[ch] * pi[ch], b = pb[ch]
                    let xs = px + plane * s.h * s.w, ys = py + plane * s.ho * s.wo
                    for oh in 0..<s.ho {
                        normalizeRow(x: xs + 2 * oh * s.w, count: s.w, mean: m, scale: scale, beta: b, relu: true, y: t0)
                        normalizeRow(x: xs + (2 * oh + 1) * s.w, count: s.w, mean: m, scale: scale, beta: b, relu: true, y: t1)
                        let out = ys + oh * s.wo
                        // Pooling.avgForward's order, so the result is the unfused pair's bit for bit.
                        for ow in 0..<s.wo {
                            out[ow] = ((t0[2 * ow] + t0[2 * ow + 1]) + (t1[2 * ow] + t1[2 * ow + 1])) * 0.25
                        }
                    }
                }
            }
        }
    }

    /// Writes into `row` (w floats) the gradient reaching each position of input row `row` from
    /// the pooled gradient: dy / 4 inside the windows, 0 in a trailing odd column or row.
    @inline(__always)
    static func expandPooledGradient(_ s: (c: Int, n: Int, h: Int, w: Int, ho: Int, wo: Int), dyPlane: UnsafePointer<Float>,
                                     inputRow: Int, into row: UnsafeMutablePointer<Float>) {
        let oh = inputRow / 2
        guard oh < s.ho else { row.update(repeating: 0, count: s.w); return }
        let d = dyPlane + oh * s.wo
        for ow in 0..<s.wo {
            let v = d[ow] * 0.25
            row[2 * ow] = v
            row[2 * ow + 1] = v
        }
        if s.w > 2 * s.wo { row[s.w - 1] = 0 }
    }

    /// sumDy[c] = Σ g, sumDyXhat[c] = Σ g·xhat over all positions, g the gradient of the
    /// normalised value (pooled gradient / 4 inside the windows, masked by the ReLU): the row
    /// kernel of `BatchNorm.backward` on each input row with the pooled gradient spread over it.
    // dy (C, N, H/2, W/2); x (C, N, H, W); gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func normalizedAveragePoolBackwardSums(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                         invStd: Tensor, sumDy: Tensor, sumDyXhat: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let s = checkPooled("normalizedAveragePoolBackwardSums", x: x, pooled: dy,
                            [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd), ("sumDy", sumDy),
                             ("sumDyXhat", sumDyXhat)])
        if DryRun.isActive { return }
        let px = x.pointer, pdy = dy.pointer, pg = gamma.pointer, pb = beta.pointer, pm = mean.pointer, pi = invStd.pointer
        let psd = sumDy.pointer, psx = sumDyXhat.pointer
        Elementwise.forRanges(s.c, unitCost: s.n * s.h * s.w) { channels in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: s.w) { buffer in
                let g = buffer.baseAddress!
                for ch in channels {
                    var total = 0.0, totalXhat = 0.0
                    for image in 0..<s.n {
                        let plane = ch * s.n + image
                        // Rows past the last window carry no gradient and add nothing.
                        for row in 0..<(2 * s.ho) {
                            if row % 2 == 0 { expandPooledGradient(s, dyPlane: pdy + plane * s.ho * s.wo, inputRow: row, into: g) }
                            let sums = backwardSumsRow(dy: g, x: px + plane * s.h * s.w + row * s.w, count: s.w, mean: pm[ch],
                                                       invStd: pi[ch], scale: pg[ch] * pi[ch], beta: pb[ch], relu: true)
                            total += sums.sumDy
                            totalXhat += sums.sumDyXhat
                        }
                    }
                    psd[ch] = Float(total)
                    psx[ch] = Float(totalXhat)
                }
            }
        }
    }

    /// dx += gamma·invStd·(g − sumDy/count − xhat·sumDyXhat/count), g as in the sums (the row
    /// kernel of `BatchNorm.backward`); with the statistics held fixed (evaluation), pass zero sums.
    // dy (C, N, H/2, W/2); x, dx (C, N, H, W); gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func normalizedAveragePoolInputGradient(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                          invStd: Tensor, sumDy: Tensor, sumDyXhat: Tensor, count: Int,
                                                          dx: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let s = checkPooled("normalizedAveragePoolInputGradient", x: x, pooled: dy,
                            [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd), ("sumDy", sumDy),
                             ("sumDyXhat", sumDyXhat)])
        precondition(dx.shape == x.shape && dx.isContiguous, "BatchNorm.normalizedAveragePoolInputGradient: dx \(dx.shape) vs x \(x.shape)")
        precondition(count > 0, "BatchNorm.normalizedAveragePoolInputGradient: count \(count) must be positive")
        if DryRun.isActive { return }
        let px = x.pointer, pdy = dy.pointer, pg = gamma.pointer, pb = beta.pointer, pm = mean.pointer, pi = invStd.pointer
        let psd = sumDy.pointer, psx = sumDyXhat.pointer, pdx = dx.pointer
        let inverseCount = 1 / Float(count)
        Elementwise.forRanges(s.c * s.n, unitCost: s.h * s.w) { planes in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: s.w) { buffer in
                let g = buffer.baseAddress!
                for plane in planes {
                    let ch = plane / s.n
                    let offset = plane * s.h * s.w
                    for row in 0..<s.h {
                        if row % 2 == 0 || row >= 2 * s.ho {
                            expandPooledGradient(s, dyPlane: pdy + plane * s.ho * s.wo, inputRow: row, into: g)
                        }
                        inputGradientRow(dy: g, x: px + offset + row * s.w, count: s.w, mean: pm[ch], invStd: pi[ch],
                                         scale: pg[ch] * pi[ch], beta: pb[ch], relu: true, meanDy: psd[ch] * inverseCount,
                                         meanDyXhat: psx[ch] * inverseCount, dx: pdx + offset + row * s.w)
                    }
                }
            }
        }
    }
}

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

    /// y = avgpool2x2(relu(gamma·(x − mean)·invStd + beta)), the normalised x never stored.
    // x (C, N, H, W); gamma, beta, mean, invStd (C); y (C, N, H/2, W/2).
    public static func normalizedAveragePoolForward(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                    invStd: Tensor, into y: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let s = checkPooled("normalizedAveragePoolForward", x: x, pooled: y,
                            [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd)])
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer, pg = gamma.pointer, pb = beta.pointer, pm = mean.pointer, pi = invStd.pointer
        Elementwise.forRanges(s.c * s.n, unitCost: s.h * s.w) { planes in
            for plane in planes {
                let ch = plane / s.n
                let m = pm[ch], scale = pg[ch] * pi[ch], b = pb[ch]
                @inline(__always) func v(_ p: UnsafePointer<Float>) -> Float { max(affine(p.pointee, mean: m, scale: scale, beta: b), 0) }
                let xs = px + plane * s.h * s.w, ys = py + plane * s.ho * s.wo
                for oh in 0..<s.ho {
                    let r0 = xs + 2 * oh * s.w, r1 = r0 + s.w, out = ys + oh * s.wo
                    for ow in 0..<s.wo {
                        out[ow] = ((v(r0 + 2 * ow) + v(r0 + 2 * ow + 1)) + (v(r1 + 2 * ow) + v(r1 + 2 * ow + 1))) * 0.25
                    }
                }
            }
        }
    }

    /// Visits every input position of one channel's plane `plane` with its normalised value's
    /// gradient g (the pooled gradient / 4, 0 outside the windows or where the ReLU clipped) and xhat.
    @inline(__always)
    static func pooledGradients(_ s: (c: Int, n: Int, h: Int, w: Int, ho: Int, wo: Int), plane: Int,
                                x: UnsafePointer<Float>, dy: UnsafePointer<Float>, mean: Float, invStd: Float,
                                scale: Float, beta: Float, _ body: (_ index: Int, _ g: Float, _ xhat: Float) -> Void) {
        let xs = x + plane * s.h * s.w, ds = dy + plane * s.ho * s.wo
        for row in 0..<s.h {
            let oh = row / 2
            for col in 0..<s.w {
                let q = row * s.w + col
                let value = xs[q]
                var g: Float = 0
                if oh < s.ho && col / 2 < s.wo && affine(value, mean: mean, scale: scale, beta: beta) > 0 {
                    g = ds[oh * s.wo + col / 2] * 0.25
                }
                body(q, g, (value - mean) * invStd)
            }
        }
    }

    /// sumDy[c] = Σ g, sumDyXhat[c] = Σ g·xhat over all positions, g the gradient of the
    /// normalised value (pooled gradient / 4 inside the windows, masked by the ReLU).
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
            for ch in channels {
                var total = 0.0, totalXhat = 0.0
                for image in 0..<s.n {
                    pooledGradients(s, plane: ch * s.n + image, x: px, dy: pdy, mean: pm[ch], invStd: pi[ch],
                                    scale: pg[ch] * pi[ch], beta: pb[ch]) { _, g, xhat in
                        total += Double(g)
                        totalXhat += Double(g * xhat)
                    }
                }
                psd[ch] = Float(total)
                psx[ch] = Float(totalXhat)
            }
        }
    }

    /// dx += gamma·invStd·(g − sumDy/count − xhat·sumDyXhat/count), g as in the sums; with the
    /// statistics held fixed (evaluation), pass zero sums.
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
            for plane in planes {
                let ch = plane / s.n
                let factor = pg[ch] * pi[ch], meanDy = psd[ch] * inverseCount, meanDyXhat = psx[ch] * inverseCount
                let out = pdx + plane * s.h * s.w
                pooledGradients(s, plane: plane, x: px, dy: pdy, mean: pm[ch], invStd: pi[ch],
                                scale: pg[ch] * pi[ch], beta: pb[ch]) { q, g, xhat in
                    out[q] += factor * (g - meanDy - xhat * meanDyXhat)
                }
            }
        }
    }
}

import Runtime

// The raw (channels × columns, row stride ld) halves of batch norm. The Tensor-level functions in
// BatchNorm.swift call these with one channel at a time (so a row is still in cache between the
// passes); the memory-efficient DenseNet calls them on column tiles of a wider buffer.

extension BatchNorm {
    typealias V = Elementwise.Vector

    // MARK: Raw tile functions (public contract)

    /// sumDy[c] += Σ g, sumDyXhat[c] += Σ g·xhat over the tile's columns, where g = dy, masked by
    /// gamma·xhat + beta > 0 when relu, and xhat = (x − mean)·invStd. The caller adds the totals
    /// to dBeta (Σ g) and dGamma (Σ g·xhat) once. Each channel's tile sum is taken in Double and
    /// added to the Float totals once, so splitting the columns into tiles only changes the
    /// rounding of those few additions.
    // (C, columns) with row stride ld.
    public static func accumulateBackwardSums(dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
        channels: Int, columns: Int, ld: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, relu: Bool,
        sumDy: UnsafeMutablePointer<Float>, sumDyXhat: UnsafeMutablePointer<Float>) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        checkTile("accumulateBackwardSums", channels: channels, columns: columns, ld: ld)
        Elementwise.forRanges(channels, unitCost: 2 * columns) { cs in
            for c in cs {
                let s = backwardSumsRow(dy: dy + c * ld, x: x + c * ld, count: columns, mean: mean[c],
                                        invStd: invStd[c], scale: gamma[c] * invStd[c], beta: beta[c], relu: relu)
                sumDy[c] += Float(s.sumDy)
                sumDyXhat[c] += Float(s.sumDyXhat)
            }
        }
    }

    /// dx += gamma·invStd·(g − sumDy/count − xhat·sumDyXhat/count), with g and xhat as in
    /// `accumulateBackwardSums` and count the columns of all tiles together; with `overwrite`,
    /// dx = that, its contents before never read (a gradient buffer nothing was added to yet).
    // (C, columns) with row strides ld (dy, x) and dxLd (dx).
    public static func accumulateInputGradient(dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
        channels: Int, columns: Int, ld: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, relu: Bool,
        sumDy: UnsafePointer<Float>, sumDyXhat: UnsafePointer<Float>, count: Int,
        dx: UnsafeMutablePointer<Float>, dxLd: Int, overwrite: Bool = false) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        checkTile("accumulateInputGradient", channels: channels, columns: columns, ld: ld)
        precondition(dxLd >= columns, "BatchNorm.accumulateInputGradient: dxLd \(dxLd) < columns \(columns)")
        precondition(count > 0, "BatchNorm.accumulateInputGradient: count \(count) must be positive")
        let inverseCount = 1 / Float(count)
        Elementwise.forRanges(channels, unitCost: 4 * columns) { cs in
            for c in cs {
                inputGradientRow(dy: dy + c * ld, x: x + c * ld, count: columns, mean: mean[c], invStd: invStd[c],
                                 scale: gamma[c] * invStd[c], beta: beta[c], relu: relu,
                                 meanDy: sumDy[c] * inverseCount, meanDyXhat: sumDyXhat[c] * inverseCount,
                                 dx: dx + c * dxLd, overwrite: overwrite)
            }
        }
    }

    /// y = gamma·(x − mean)·invStd + beta (then max(·, 0) if relu) over a tile.
    // (C, columns) with row strides ld (x) and yLd (y).
    public static func applyStatistics(x: UnsafePointer<Float>, channels: Int, columns: Int, ld: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        invStd: UnsafePointer<Float>, relu: Bool, y: UnsafeMutablePointer<Float>, yLd: Int) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        checkTile("applyStatistics", channels: channels, columns: columns, ld: ld)
        precondition(yLd >= columns, "BatchNorm.applyStatistics: yLd \(yLd) < columns \(columns)")
        Elementwise.forRanges(channels, unitCost: 2 * columns) { cs in
            for c in cs {
                normalizeRow(x: x + c * ld, count: columns, mean: mean[c], scale: gamma[c] * invStd[c],
                             beta: beta[c], relu: relu, y: y + c * yLd)
            }
        }
    }

    static func checkTile(_ name: String, channels: Int, columns: Int, ld: Int) {
        precondition(channels >= 0 && columns >= 0 && ld >= columns,
                     "BatchNorm.\(name): channels \(channels), columns \(columns), ld \(ld) (need ld >= columns >= 0)")
    }

    // MARK: Row kernels (one channel, one thread)

    /// The normalised value (x − mean)·scale + beta, scale = gamma·invStd. The forward's output and
    /// the backward's ReLU mask both come from this exact expression, so the mask is the forward's.
    @inline(__always)
    static func affine(_ x: Float, mean: Float, scale: Float, beta: Float) -> Float {
        (x - mean) * scale + beta
    }

    @inline(__always)
    static func affine(_ x: V, mean: V, scale: V, beta: V) -> V {
        (x - mean) * scale + beta
    }

    // The row kernels below run the C kernels of the active `KernelLevel` (CKernels, chosen by
    // the running CPU) when there is one, else the Swift references after them.

    // y (count) = affine(x) (+ReLU).
    @inline(__always)
    static func normalizeRow(x: UnsafePointer<Float>, count: Int, mean: Float, scale: Float, beta: Float,
                             relu: Bool, y: UnsafeMutablePointer<Float>) {
        if let table = KernelLevel.table {
            table.pointee.normalize_row(x, count, mean, scale, beta, relu ? 1 : 0, y)
            return
        }
        normalizeRowReference(x: x, count: count, mean: mean, scale: scale, beta: beta, relu: relu, y: y)
    }

    static func normalizeRowReference(x: UnsafePointer<Float>, count: Int, mean: Float, scale: Float, beta: Float,
                                      relu: Bool, y: UnsafeMutablePointer<Float>) {
        let m = V(repeating: mean), s = V(repeating: scale), b = V(repeating: beta)
        let lanes = Elementwise.lanes
        var i = 0
        if relu {
            while i + lanes <= count {
                Elementwise.store(Elementwise.relu(affine(Elementwise.load(x, i), mean: m, scale: s, beta: b)), y, i)
                i += lanes
            }
            while i < count { y[i] = max(affine(x[i], mean: mean, scale: scale, beta: beta), 0); i += 1 }
        } else {
            while i + lanes <= count {
                Elementwise.store(affine(Elementwise.load(x, i), mean: m, scale: s, beta: b), y, i)
                i += lanes
            }
            while i < count { y[i] = affine(x[i], mean: mean, scale: scale, beta: beta); i += 1 }
        }
    }

    // Σ g and Σ g·xhat over one row (count), g = dy masked by affine(x) > 0 when relu.
    @inline(__always)
    static func backwardSumsRow(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, mean: Float,
                                invStd: Float, scale: Float, beta: Float, relu: Bool) -> (sumDy: Double, sumDyXhat: Double) {
        if let table = KernelLevel.table {
            var sums = (0.0, 0.0)
            withUnsafeMutableBytes(of: &sums) {
                table.pointee.backward_sums_row(dy, x, count, mean, scale, beta, relu ? 1 : 0,
                                                $0.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            return (sums.0, sums.1 * Double(invStd))
        }
        return backwardSumsRowReference(dy: dy, x: x, count: count, mean: mean, invStd: invStd, scale: scale,
                                        beta: beta, relu: relu)
    }

    static func backwardSumsRowReference(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, mean: Float,
                                         invStd: Float, scale: Float, beta: Float, relu: Bool) -> (sumDy: Double, sumDyXhat: Double) {
        let m = V(repeating: mean), s = V(repeating: scale), b = V(repeating: beta), zero = V()
        let lanes = Elementwise.lanes
        var totalDy = 0.0, totalDyCentered = 0.0
        var start = 0
        while start < count {
            let end = min(start + Elementwise.reductionBlock, count)
            var accDy = V(), accDyCentered = V(), accDy2 = V(), accDyCentered2 = V()
            var i = start
            // Two vectors per step: four independent accumulation chains.
            while i + 2 * lanes <= end {
                let x0 = Elementwise.load(x, i), x1 = Elementwise.load(x, i + lanes)
                var g0 = Elementwise.load(dy, i), g1 = Elementwise.load(dy, i + lanes)
                if relu {
                    g0.replace(with: 0, where: affine(x0, mean: m, scale: s, beta: b) .<= zero)
                    g1.replace(with: 0, where: affine(x1, mean: m, scale: s, beta: b) .<= zero)
                }
                accDy += g0
                accDy2 += g1
                accDyCentered += g0 * (x0 - m)
                accDyCentered2 += g1 * (x1 - m)
                i += 2 * lanes
            }
            accDy += accDy2
            accDyCentered += accDyCentered2
            while i + lanes <= end {
                let xv = Elementwise.load(x, i)
                var g = Elementwise.load(dy, i)
                if relu { g.replace(with: 0, where: affine(xv, mean: m, scale: s, beta: b) .<= zero) }
                accDy += g
                accDyCentered += g * (xv - m)
                i += lanes
            }
            var sumDy = accDy.sum(), sumDyCentered = accDyCentered.sum()
            while i < end {
                let g = relu && affine(x[i], mean: mean, scale: scale, beta: beta) <= 0 ? 0 : dy[i]
                sumDy += g
                sumDyCentered += g * (x[i] - mean)
                i += 1
            }
            totalDy += Double(sumDy)
            totalDyCentered += Double(sumDyCentered)
            start = end
        }
        return (totalDy, totalDyCentered * Double(invStd))
    }

    // dx (count) += scale·(g − meanDy − xhat·meanDyXhat), xhat = (x − mean)·invStd; = with overwrite.
    @inline(__always)
    static func inputGradientRow(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, mean: Float,
                                 invStd: Float, scale: Float, beta: Float, relu: Bool, meanDy: Float,
                                 meanDyXhat: Float, dx: UnsafeMutablePointer<Float>, overwrite: Bool = false) {
        if let table = KernelLevel.table {
            table.pointee.input_gradient_row(dy, x, count, mean, scale, beta, relu ? 1 : 0, meanDy,
                                             invStd * meanDyXhat, dx, overwrite ? 0 : 1)
            return
        }
        inputGradientRowReference(dy: dy, x: x, count: count, mean: mean, invStd: invStd, scale: scale, beta: beta,
                                  relu: relu, meanDy: meanDy, meanDyXhat: meanDyXhat, dx: dx, overwrite: overwrite)
    }

    static func inputGradientRowReference(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, mean: Float,
                                          invStd: Float, scale: Float, beta: Float, relu: Bool, meanDy: Float,
                                          meanDyXhat: Float, dx: UnsafeMutablePointer<Float>, overwrite: Bool = false) {
        if overwrite { dx.update(repeating: 0, count: count) }
        let centeredFactor = invStd * meanDyXhat
        let m = V(repeating: mean), s = V(repeating: scale), b = V(repeating: beta), zero = V()
        let a = V(repeating: meanDy), k = V(repeating: centeredFactor)
        let lanes = Elementwise.lanes
        var i = 0
        while i + lanes <= count {
            let xv = Elementwise.load(x, i)
            var g = Elementwise.load(dy, i)
            if relu { g.replace(with: 0, where: affine(xv, mean: m, scale: s, beta: b) .<= zero) }
            Elementwise.store(Elementwise.load(dx, i) + s * (g - a - (xv - m) * k), dx, i)
            i += lanes
        }
        while i < count {
            let g = relu && affine(x[i], mean: mean, scale: scale, beta: beta) <= 0 ? 0 : dy[i]
            dx[i] += scale * (g - meanDy - (x[i] - mean) * centeredFactor)
            i += 1
        }
    }

    // Σ g and Σ g·xhat over one row, as `backwardSumsRow`, and in the same pass dx (count) += scale·g:
    // the input gradient with the statistics held fixed.
    @inline(__always)
    static func fixedInputGradientRow(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, mean: Float,
                                      invStd: Float, scale: Float, beta: Float, relu: Bool,
                                      dx: UnsafeMutablePointer<Float>) -> (sumDy: Double, sumDyXhat: Double) {
        if let table = KernelLevel.table {
            var sums = (0.0, 0.0)
            withUnsafeMutableBytes(of: &sums) {
                table.pointee.fixed_input_gradient_row(dy, x, count, mean, scale, beta, relu ? 1 : 0,
                                                       $0.baseAddress!.assumingMemoryBound(to: Double.self), dx)
            }
            return (sums.0, sums.1 * Double(invStd))
        }
        return fixedInputGradientRowReference(dy: dy, x: x, count: count, mean: mean, invStd: invStd, scale: scale,
                                              beta: beta, relu: relu, dx: dx)
    }

    /// `fixedInputGradientRow` as the two row references it fuses: the sums, then the gradient
    /// with zero means.
    static func fixedInputGradientRowReference(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int,
                                               mean: Float, invStd: Float, scale: Float, beta: Float, relu: Bool,
                                               dx: UnsafeMutablePointer<Float>) -> (sumDy: Double, sumDyXhat: Double) {
        let sums = backwardSumsRowReference(dy: dy, x: x, count: count, mean: mean, invStd: invStd, scale: scale,
                                            beta: beta, relu: relu)
        inputGradientRowReference(dy: dy, x: x, count: count, mean: mean, invStd: invStd, scale: scale, beta: beta,
                                  relu: relu, meanDy: 0, meanDyXhat: 0, dx: dx)
        return sums
    }
}

import Runtime

/// The input gradient of `pointwiseForwardNormalized` (Conv2d+NormalizedInput.swift) without the
/// gradient of the normalised input ever in memory: each thread multiplies a tile of positions
/// (all channels × `tile` positions, cut as the weight gradient's, `normalizedTiling`: 256
/// positions or more unless the threads need narrower) into its own slice of the workspace and
/// takes it at once, one pass per row (`BatchNorm.fixedInputGradientRow`), through the ReLU and
/// batch norm into dx.
///
/// Batch norm's training-mode input gradient,
///
///     dx = gamma·invStd·(g − Σg/count − xhat·Σ(g·xhat)/count),   g = relu-masked (Wᵀ·dy),
///
/// needs the two sums over every position before any dx, which makes the unfused path write the
/// whole g (C × positions), then read it twice, once for the sums and once for dx. This kernel
/// adds only the first term, tile by tile, and returns the sums; the rest, the gradient through
/// the batch mean and variance, is a per-channel `a + xhat·b` that
/// `BatchNorm.accumulateStatisticsGradient` adds later. In a dense block every layer's norm1
/// normalises the shared channels with the same batch statistics
/// (`BatchNormState.statistics(knownPrefix:)`), so the later parts of all layers add up to one
/// `a + xhat·b` per channel, added once, when the channel's gradient is first read
/// (Sources/DenseNetModels/DenseBlock+SharedStorage.swift). With the statistics fixed
/// (evaluation mode) the first term is the whole gradient.
///
/// `bench-kernels --compare-fused` times it against the unfused pair (DenseNet-BC-100's 204→48
/// at batch 64: ×1.17–1.20; DenseNet-121's shapes ×0.92–1.08, this machine, 2 threads). Narrower
/// tiles (64 Ki floats, 64 positions at C = 992) ran DenseNet-121's wide layers at ×0.64–0.84.
///
/// The reference is the unfused pair: `Conv2d.backward` for Wᵀ·dy, then
/// `BatchNorm.backwardWithFixedStatistics` (Conv2dNormalizedInputGradientTests).
extension Conv2d {
    /// Floats of the sums `pointwiseBackwardNormalized` keeps per thread for x on this thread count.
    public static func normalizedBackwardSumsFloats(_ x: Tensor) -> Int {
        sumsFloats(normalizedTiling(x, weightGradient: true), channels: x.shape[0])
    }

    /// Every thread's two rows of sums (`TileInputGradient`).
    static func sumsFloats(_ tiling: NormalizedTiling, channels: Int) -> Int { 2 * tiling.parts * channels }

    /// Every thread's tile and its two rows of sums (`pointwiseInputGradientNormalized`).
    static func inputGradientFloats(_ tiling: NormalizedTiling, channels: Int) -> Int {
        tiling.parts * channels * tiling.tile + sumsFloats(tiling, channels: channels)
    }

    /// Floats of workspace `pointwiseInputGradientNormalized` needs for x (C, N, H, W) on this
    /// thread count (a dry run's when one is active): each part's tile and its two rows of sums.
    public static func normalizedInputGradientWorkspace(_ x: Tensor) -> Int {
        let tiling = normalizedTiling(x, weightGradient: true)
        return inputGradientFloats(tiling, channels: x.shape[0])
    }

    /// dx += gamma·invStd·g, sumDy += Σ g, sumDyXhat += Σ g·xhat per channel, where g = Wᵀ·dy
    /// masked by relu(gamma·xhat + beta) > 0 and xhat = (x − mean)·invStd. Uses the first
    /// `normalizedInputGradientWorkspace(x)` floats of `workspace` when given (any dead tensor
    /// that large), else counted scratch.
    // dy (M, N, H, W); x, dx (C, N, H, W); weight (M, C, 1, 1); gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func pointwiseInputGradientNormalized(_ dy: Tensor, x: Tensor, weight: Tensor, gamma: Tensor,
                                                        beta: Tensor, mean: Tensor, invStd: Tensor, dx: Tensor,
                                                        sumDy: Tensor, sumDyXhat: Tensor, workspace: Tensor? = nil) {
        let span = Profile.begin(.conv1x1Backward); defer { Profile.end(span) }
        precondition(x.rank == 4 && x.isContiguous && x.shape[0] > 0,
                     "Conv2d.pointwiseInputGradientNormalized: x \(x.shape) must be a contiguous (C, N, H, W) tensor with C > 0")
        let c = x.shape[0], p = x.count / c
        for (label, t) in [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd),
                           ("sumDy", sumDy), ("sumDyXhat", sumDyXhat)] {
            precondition(t.count == c && t.isContiguous,
                         "Conv2d.pointwiseInputGradientNormalized: \(label) \(t.shape) vs x \(x.shape): need \(c) values")
        }
        precondition(weight.rank == 4 && weight.isContiguous && weight.shape[1] == c && weight.shape[2] == 1 && weight.shape[3] == 1,
                     "Conv2d.pointwiseInputGradientNormalized: weight \(weight.shape) must be (M, \(c), 1, 1) for x \(x.shape)")
        let m = weight.shape[0]
        precondition(dy.isContiguous && dy.shape == [m] + Array(x.shape.dropFirst()),
                     "Conv2d.pointwiseInputGradientNormalized: dy \(dy.shape) must be (\(m), \(x.shape[1]), \(x.shape[2]), \(x.shape[3]))")
        precondition(dx.isContiguous && dx.shape == x.shape,
                     "Conv2d.pointwiseInputGradientNormalized: dx \(dx.shape) must be x's \(x.shape), contiguous")
        let tiling = normalizedTiling(x, weightGradient: true)
        let space = workspaceOrScratch(workspace, floats: inputGradientFloats(tiling, channels: c),
                                       "pointwiseInputGradientNormalized")
        if let dryRun = DryRun.current {
            dryRun.product(flops: 2 * Double(m) * Double(c) * Double(p), parts: tiling.parts)
            return
        }
        Gemm.useOneBLASThread()
        let tiles = space.pointer
        let gradient = TileInputGradient(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                         dx: dx, sums: space.pointer + tiling.parts * c * tiling.tile, parts: tiling.parts)
        Parallel.forEach(tiling.parts) { part in
            for index in stride(from: part, to: tiling.tiles, by: tiling.parts) {
                gradient.run(part: part, columns: tiling.positions(index, of: p), tile: tiles + part * c * tiling.tile)
            }
        }
        gradient.addSums(into: sumDy, sumDyXhat)
    }

    /// `workspace`, checked to hold `floats`, or counted scratch of that many.
    static func workspaceOrScratch(_ workspace: Tensor?, floats: Int, _ name: String) -> Tensor {
        guard let workspace else { return Tensor(shape: [floats], category: .scratch) }
        precondition(workspace.isContiguous && workspace.count >= floats,
                     "Conv2d.\(name): workspace \(workspace.shape) under the \(floats) floats needed")
        return workspace
    }

    /// One tile's input gradient, as the threads run it: the product of weightᵀ and dy's columns
    /// into the tile, then each row through the ReLU and batch norm with the statistics fixed into
    /// dx, its sums into the thread's own two rows of C (Σg, then Σg·xhat) of `sums`, zeroed here.
    struct TileInputGradient {
        let c: Int, m: Int, p: Int
        let weight: UnsafePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>
        let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>
        let dx: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>, parts: Int

        init(_ dy: Tensor, x: Tensor, weight: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
             dx: Tensor, sums: UnsafeMutablePointer<Float>, parts: Int) {
            (c, m, p) = (x.shape[0], weight.shape[0], x.count / x.shape[0])
            (self.weight, self.dy, self.x) = (UnsafePointer(weight.pointer), UnsafePointer(dy.pointer), UnsafePointer(x.pointer))
            (self.gamma, self.beta) = (UnsafePointer(gamma.pointer), UnsafePointer(beta.pointer))
            (self.mean, self.invStd) = (UnsafePointer(mean.pointer), UnsafePointer(invStd.pointer))
            (self.dx, self.sums, self.parts) = (dx.pointer, sums, parts)
            sums.update(repeating: 0, count: 2 * parts * c)
        }

        func run(part: Int, columns: Range<Int>, tile: UnsafeMutablePointer<Float>) {
            let width = columns.count
            // (C × width) = weightᵀ (C × M) · dy[:, columns] (M × width)
            Gemm.sgemm(transA: true, m: c, n: width, k: m, a: weight, lda: c, b: dy + columns.lowerBound, ldb: p,
                       beta: 0, c: tile, ldc: width)
            let partDy = sums + 2 * part * c, partDyXhat = partDy + c
            for ch in 0..<c {
                let row = tile + ch * width, xRow = x + ch * p + columns.lowerBound
                let s = BatchNorm.fixedInputGradientRow(dy: row, x: xRow, count: width, mean: mean[ch], invStd: invStd[ch],
                                                        scale: gamma[ch] * invStd[ch], beta: beta[ch], relu: true,
                                                        dx: dx + ch * p + columns.lowerBound)
                partDy[ch] += Float(s.sumDy)
                partDyXhat[ch] += Float(s.sumDyXhat)
            }
        }

        /// sumDy, sumDyXhat (C) += every thread's sums, in thread order.
        func addSums(into sumDy: Tensor, _ sumDyXhat: Tensor) {
            let psd = sumDy.pointer, psx = sumDyXhat.pointer
            for part in 0..<parts {
                for ch in 0..<c {
                    psd[ch] += sums[2 * part * c + ch]
                    psx[ch] += sums[2 * part * c + c + ch]
                }
            }
        }
    }

    /// `pointwiseWeightGradientNormalized` and `pointwiseInputGradientNormalized` in one pass over
    /// the tiles: each thread normalises a tile of x for dW, then makes the tile's Wᵀ·dy in the
    /// same scratch and takes it through the ReLU and batch norm while that tile of x is still in
    /// cache, so x is read from memory once for both (`bench-kernels --compare-fused`, 2 threads:
    /// ×1.09 of the two calls at DenseNet-BC-100's 204→48, ×1.01–1.05 at DenseNet-121's shapes but
    /// 7x7, ×0.97–1.00 there). Same results as the two calls (the same tiles, products and row
    /// kernels, in the same order). The threads' sums go to the first 2·parts·C floats of
    /// `workspace` when given (`normalizedBackwardSumsFloats`), else to counted scratch.
    // dy (M, N, H, W); x, dx (C, N, H, W); weight, dWeight (M, C, 1, 1); dBias (M);
    // gamma, beta, mean, invStd, sumDy, sumDyXhat (C).
    public static func pointwiseBackwardNormalized(_ dy: Tensor, x: Tensor, weight: Tensor, gamma: Tensor, beta: Tensor,
                                                   mean: Tensor, invStd: Tensor, dWeight: Tensor, dBias: Tensor?,
                                                   dx: Tensor, sumDy: Tensor, sumDyXhat: Tensor, workspace: Tensor? = nil) {
        let span = Profile.begin(.conv1x1Backward); defer { Profile.end(span) }
        precondition(dWeight.shape == weight.shape, "Conv2d.pointwiseBackwardNormalized: dWeight \(dWeight.shape) vs weight \(weight.shape)")
        precondition(dx.isContiguous && dx.shape == x.shape, "Conv2d.pointwiseBackwardNormalized: dx \(dx.shape) must be x's \(x.shape)")
        let c = x.shape[0], p = x.count / max(c, 1), m = weight.shape[0]
        for (label, t) in [("sumDy", sumDy), ("sumDyXhat", sumDyXhat)] {
            precondition(t.count == c && t.isContiguous, "Conv2d.pointwiseBackwardNormalized: \(label) \(t.shape) for \(c) channels")
        }
        if let dBias { precondition(dBias.count == m, "Conv2d.pointwiseBackwardNormalized: dBias \(dBias.shape) for \(m) outputs") }
        let tiling = normalizedTiling(x, weightGradient: true)
        let scratch = Tensor(shape: [tiling.parts, c, tiling.tile], category: .scratch)
        let partials = Tensor(shape: [tiling.parts - 1, m, c], category: .scratch)
        let sums = workspaceOrScratch(workspace, floats: sumsFloats(tiling, channels: c), "pointwiseBackwardNormalized")
        if let dryRun = DryRun.current {
            dryRun.product(flops: 4 * Double(m) * Double(c) * Double(p), parts: tiling.parts)
            return
        }
        let pdy = dy.pointer, pp = partials.pointer, pdw = dWeight.pointer
        if tiling.parts > 1 { partials.zero() }
        let gradient = TileInputGradient(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                         dx: dx, sums: sums.pointer, parts: tiling.parts)
        let own = ownsNormalizedWeightGradient(outputs: m, positions: p) ? KernelLevel.table : nil
        forEachNormalizedTile(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, tiling: tiling,
                              scratch: scratch, transposed: own) { part, columns, tile in
            addNormalizedWeightGradient(dy: pdy + columns.lowerBound, ldy: p, tile: tile, width: columns.count,
                                        channels: c, outputs: m, into: part == 0 ? pdw : pp + (part - 1) * m * c,
                                        own: own)
            // The normalised tile is dead: the input gradient's product takes its place.
            gradient.run(part: part, columns: columns, tile: tile)
        }
        Parallel.addPartials(pp, count: tiling.parts - 1, rows: m, columns: c, into: pdw, ldc: c)
        gradient.addSums(into: sumDy, sumDyXhat)
        if let dBias { Elementwise.accumulateRowSums(pdy, rows: m, columns: p, into: dBias.pointer) }
    }
}

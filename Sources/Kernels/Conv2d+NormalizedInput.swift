import CKernels
import Runtime

/// The 1x1 convolution of a batch-normalised, ReLU'd input that is never stored: each thread
/// normalises a tile of positions (all channels × `tile` positions) into its own cache-sized
/// scratch and multiplies it at once, so the normalised tensor exists one tile per thread at a
/// time. This takes Pleiss et al.'s shared BN storage ("Memory-Efficient Implementation of
/// DenseNets", arXiv 1707.06990) one step further: the storage is gone, and the normalised
/// operand is read from cache instead of written to memory and read back (issue 13: "batch norm +
/// ReLU applied while packing the operand of the 1x1 convolution that consumes it").
///
/// The normalisation is `BatchNorm.normalizeRow`, the same expression as the unfused forward,
/// so the products see bit for bit the operand the unfused path would store. The products are
/// OpenBLAS's (one thread each): a tile's columns are the columns of y it produces, so the
/// forward sums over the channels in the order of the unfused product; the weight gradient sums
/// over positions tile by tile. The references are the unfused pair, `BatchNorm.forwardWithStatistics`
/// then `Conv2d.forward`/`backward` (Conv2dNormalizedInputTests).
///
/// The time of a call, normalisation included, is counted as the 1x1 convolution's in profiles.
extension Conv2d {
    /// How the positions of a normalised 1x1 product are cut: `tile` positions per tile, held by
    /// `parts` threads at once (each with a scratch of channels × tile floats), `tiles` in all.
    public struct NormalizedTiling: Equatable, Sendable {
        public let tile: Int
        public let tiles: Int
        public let parts: Int

        /// Tiles of at most `floats` floats (the forward's 64 Ki, 256 KiB, are within any L2 of the
        /// machines of ../shared/reference/machine-notes.md), 16 to `widest` positions wide (a
        /// multiple of 16 but for the last), and as many as fill whole rounds of the threads: the
        /// fewest rounds the cache bound allows, each tile as narrow as that many rounds need, so
        /// that no thread is left a round of its own (DenseNet-121's 14x14 block at batch 8, 1568
        /// positions of 640 channels on 16 threads: 17 tiles of 96, two rounds of 96 for one thread;
        /// now 25 tiles of 64, two rounds of 64). That narrowing stops at `narrowest` positions,
        /// unless the threads need narrower tiles to have one each.
        public init(channels: Int, positions: Int, threads: Int, floats: Int = 1 << 16, widest: Int = 512,
                    narrowest: Int = 16) {
            precondition(channels > 0 && positions > 0 && threads > 0,
                         "Conv2d.NormalizedTiling: channels \(channels), positions \(positions), threads \(threads) must be positive")
            let byCache = max(16, min(widest, floats / channels / 16 * 16))
            let rounds = ((positions + byCache - 1) / byCache + threads - 1) / threads
            // A multiple of 16 (a vector of the widest level), so that only the last tile has a tail.
            func width(_ parts: Int) -> Int { max(16, ((positions + parts - 1) / parts + 15) / 16 * 16) }
            tile = min(byCache, max(width(rounds * threads), min(narrowest, width(threads))), positions)
            tiles = (positions + tile - 1) / tile
            parts = min(threads, tiles)
        }

        /// The positions of tile `index`.
        public func positions(_ index: Int, of total: Int) -> Range<Int> {
            (index * tile)..<min(total, (index + 1) * tile)
        }
    }

    /// Where 1x1 forwards (this file's normalised tiles, and `Conv2d.ownsPointwiseForward`) use our
    /// own unpacked product (`gemm_small_m`, Sources/CKernels/GemmSmallMTemplate.h) instead of
    /// OpenBLAS, which copies its operand into panels first: `.measured` where bench-kernels
    /// found it faster (AVX2 and AVX-512 levels, up to 128 outputs: `--compare-fused`, and the
    /// 1x1 cases, 216→48 forward 0.56 → 0.78 of square sgemm, 512→128 0.93 → 1.03; the plain
    /// forward at AVX-512 only, `ownsPointwiseForward` says why), `.off`, or `.always`.
    nonisolated(unsafe) public static var smallProductKernel: ThinKernelUse = .measured

    static func smallProductApplies(outputs: Int) -> Bool {
        guard smallProductKernel != .off, KernelLevel.table != nil else { return false }
        return smallProductKernel == .always
            || (KernelLevel.active.rawValue >= KernelLevel.avx2.rawValue && outputs <= 128)
    }

    /// The tiling of `x` on this thread's thread count (a dry run's when one is active). The
    /// weight gradient's tiles are at least 256 positions wide where the forward's are narrower
    /// (a wide input: 64 positions at C = 992): each of its products reads and writes all of dW
    /// (M × C), which narrow tiles repeat too often (`bench-kernels --compare-fused`, 992→128 at
    /// 14x14: ×0.83 of the unfused pair with 64, ×1.61 with 256; 1024-wide tiles at 204→48 fell
    /// from ×1.31–1.37 to ×1.06, out of L2); balancing the threads' rounds does not narrow them
    /// below 256 either (densenet121 b8 fused, 2 threads: 1x1 backward +1.5 %).
    static func normalizedTiling(_ x: Tensor, weightGradient: Bool = false) -> NormalizedTiling {
        let channels = x.shape[0]
        return NormalizedTiling(channels: channels, positions: x.count / channels,
                                threads: DryRun.current?.threads ?? Parallel.threadCount,
                                floats: weightGradient ? max(1 << 16, 256 * channels) : 1 << 16,
                                narrowest: weightGradient ? 256 : 16)
    }

    /// Checks the shapes shared by both entry points; returns (channels C, positions P, outputs M).
    private static func checkNormalized(_ name: String, x: Tensor, statistics: [(String, Tensor)], weight: Tensor,
                                        outputs: (String, Tensor)) -> (Int, Int, Int) {
        precondition(x.rank == 4 && x.isContiguous && x.shape[0] > 0,
                     "Conv2d.\(name): x \(x.shape) must be a contiguous (C, N, H, W) tensor with C > 0")
        let c = x.shape[0], p = x.count / x.shape[0]
        for (label, t) in statistics {
            precondition(t.count == c && t.isContiguous, "Conv2d.\(name): \(label) \(t.shape) vs x \(x.shape): need \(c) values")
        }
        precondition(weight.rank == 4 && weight.isContiguous && weight.shape[1] == c && weight.shape[2] == 1 && weight.shape[3] == 1,
                     "Conv2d.\(name): weight \(weight.shape) must be (M, \(c), 1, 1) for x \(x.shape)")
        let m = weight.shape[0]
        let (label, out) = outputs
        precondition(out.isContiguous && out.shape == [m] + Array(x.shape.dropFirst()),
                     "Conv2d.\(name): \(label) \(out.shape) must be (\(m), \(x.shape[1]), \(x.shape[2]), \(x.shape[3])) and contiguous")
        return (c, p, m)
    }

    /// y (M, N, H, W) = W (M, C) · relu(gamma·(x − mean)·invStd + beta) (+ bias), x (C, N, H, W):
    /// a 1x1 convolution of the normalised x, which is never stored. Overwrites y.
    // x (C, N, H, W); gamma, beta, mean, invStd (C); weight (M, C, 1, 1); bias (M); y (M, N, H, W).
    public static func pointwiseForwardNormalized(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                  invStd: Tensor, weight: Tensor, bias: Tensor?, into y: Tensor) {
        let span = Profile.begin(.conv1x1Forward); defer { Profile.end(span) }
        let (c, p, m) = checkNormalized("pointwiseForwardNormalized", x: x,
                                        statistics: [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd)],
                                        weight: weight, outputs: ("y", y))
        if let bias { precondition(bias.count == m, "Conv2d.pointwiseForwardNormalized: bias \(bias.shape) for \(m) outputs") }
        let tiling = normalizedTiling(x)
        let scratch = Tensor(shape: [tiling.parts, c, tiling.tile], category: .scratch)
        if let dryRun = DryRun.current {
            dryRun.product(flops: 2 * Double(m) * Double(c) * Double(p), parts: tiling.parts)
            return
        }
        let pw = weight.pointer, py = y.pointer, pBias = bias?.pointer
        let ownProduct = smallProductApplies(outputs: m) ? KernelLevel.table : nil
        forEachNormalizedTile(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, tiling: tiling,
                              scratch: scratch) { _, columns, tile in
            let width = columns.count
            if let ownProduct {
                // Whole vectors by our product; a last tile's tail of under 16 columns by OpenBLAS.
                let vectors = width / 16 * 16
                ownProduct.pointee.gemm_small_m(pw, c, tile, width, m, vectors, c, py + columns.lowerBound, p, 0)
                if vectors < width {
                    Gemm.sgemm(m: m, n: width - vectors, k: c, a: pw, lda: c, b: tile + vectors, ldb: width, beta: 0,
                               c: py + columns.lowerBound + vectors, ldc: p)
                }
            } else {
                Gemm.sgemm(m: m, n: width, k: c, a: pw, lda: c, b: tile, ldb: width, beta: 0,
                           c: py + columns.lowerBound, ldc: p)
            }
            if let pBias {
                for row in 0..<m {
                    let out = py + row * p + columns.lowerBound, b = pBias[row]
                    for j in 0..<width { out[j] += b }
                }
            }
        }
    }

    /// dWeight (M, C) += dy (M, P) · relu(gamma·(x − mean)·invStd + beta)ᵀ, dBias += Σ dy: the
    /// weight gradient of `pointwiseForwardNormalized`, the normalised x again made tile by tile.
    /// Threads after the first sum into counted partials, added at the end.
    // dy (M, N, H, W); x (C, N, H, W); gamma, beta, mean, invStd (C); dWeight (M, C, 1, 1); dBias (M).
    public static func pointwiseWeightGradientNormalized(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor,
                                                         mean: Tensor, invStd: Tensor, dWeight: Tensor, dBias: Tensor?) {
        let span = Profile.begin(.conv1x1Backward); defer { Profile.end(span) }
        let (c, p, m) = checkNormalized("pointwiseWeightGradientNormalized", x: x,
                                        statistics: [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd)],
                                        weight: dWeight, outputs: ("dy", dy))
        if let dBias { precondition(dBias.count == m, "Conv2d.pointwiseWeightGradientNormalized: dBias \(dBias.shape) for \(m) outputs") }
        let tiling = normalizedTiling(x, weightGradient: true)
        let scratch = Tensor(shape: [tiling.parts, c, tiling.tile], category: .scratch)
        let partials = Tensor(shape: [tiling.parts - 1, m, c], category: .scratch)
        if let dryRun = DryRun.current {
            dryRun.product(flops: 2 * Double(m) * Double(c) * Double(p), parts: tiling.parts)
            return
        }
        let pdy = dy.pointer, pp = partials.pointer, pdw = dWeight.pointer
        if tiling.parts > 1 { partials.zero() }
        let own = ownsNormalizedWeightGradient(outputs: m, positions: p) ? KernelLevel.table : nil
        forEachNormalizedTile(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, tiling: tiling,
                              scratch: scratch, transposed: own) { part, columns, tile in
            addNormalizedWeightGradient(dy: pdy + columns.lowerBound, ldy: p, tile: tile, width: columns.count,
                                        channels: c, outputs: m, into: part == 0 ? pdw : pp + (part - 1) * m * c,
                                        own: own)
        }
        Parallel.addPartials(pp, count: tiling.parts - 1, rows: m, columns: c, into: pdw, ldc: c)
        if let dBias { Elementwise.accumulateRowSums(pdy, rows: m, columns: p, into: dBias.pointer) }
    }

    /// Calls `body(part, columns, tile)` for every tile of positions, thread `part` taking every
    /// `parts`-th tile, normalised (BN + ReLU, `BatchNorm.normalizeRow`) into that thread's slice of
    /// `scratch` as a C × columns.count matrix; with `transposed` (a kernel table), as a
    /// columns.count × C one, the same values (`normalize_transposed`).
    static func forEachNormalizedTile(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                                      tiling: NormalizedTiling, scratch: Tensor,
                                      transposed: UnsafePointer<ck_kernels>? = nil,
                                      _ body: (_ part: Int, _ columns: Range<Int>, _ tile: UnsafeMutablePointer<Float>) -> Void) {
        Gemm.useOneBLASThread()
        let c = x.shape[0], p = x.count / c
        let px = x.pointer, ps = scratch.pointer
        let pg = gamma.pointer, pb = beta.pointer, pm = mean.pointer, pi = invStd.pointer
        Parallel.forEach(tiling.parts) { part in
            let tile = ps + part * c * tiling.tile
            for index in stride(from: part, to: tiling.tiles, by: tiling.parts) {
                let columns = tiling.positions(index, of: p)
                if let transposed {
                    transposed.pointee.normalize_transposed(px + columns.lowerBound, p, c, columns.count, pm, pg, pi, pb,
                                                            tile, c)
                } else {
                    for ch in 0..<c {
                        BatchNorm.normalizeRow(x: px + ch * p + columns.lowerBound, count: columns.count, mean: pm[ch],
                                               scale: pg[ch] * pi[ch], beta: pb[ch], relu: true, y: tile + ch * columns.count)
                    }
                }
                body(part, columns, tile)
            }
        }
    }

    /// Whether the weight gradient over normalised tiles runs our product on transposed tiles
    /// (`addNormalizedWeightGradient`): where our product applies, and for more than 64 outputs
    /// from `pointwiseForwardMinimumColumnsForWide` positions. C, 2 threads, normalising and
    /// multiplying every tile against `normalizeRow` + OpenBLAS (ms): 216→48 over 65,536 positions
    /// 11.3–13.2 → 9.6–9.9, 300→48 over 16,384 3.95 → 3.52, 150→48 over 4,096 0.77 → 0.45,
    /// 256→128 over 25,088 11.2 → 8.8, 992→128 over 1,568 4.4 → 2.0, but 1000→128 over 392 0.70 →
    /// 1.00; at the AVX2 level 216→48 11.9 → 9.4, 256→128 10.8 → 9.9.
    static func ownsNormalizedWeightGradient(outputs: Int, positions: Int) -> Bool {
        smallProductApplies(outputs: outputs) && (outputs <= 64 || positions >= pointwiseForwardMinimumColumnsForWide)
    }

    /// dW (M × C, row stride C) += dy (M × width, row stride ldy) · tileᵀ, the tile C × width
    /// by OpenBLAS, or width × C (transposed) by our product where `own`.
    static func addNormalizedWeightGradient(dy: UnsafePointer<Float>, ldy: Int, tile: UnsafePointer<Float>, width: Int,
                                            channels c: Int, outputs m: Int, into dWeight: UnsafeMutablePointer<Float>,
                                            own: UnsafePointer<ck_kernels>?) {
        if let own {
            own.pointee.gemm_small_m(dy, ldy, tile, c, m, c, width, dWeight, c, CK_GEMM_ACCUMULATE)
        } else {
            Gemm.sgemm(transB: true, m: m, n: c, k: width, a: dy, lda: ldy, b: tile, ldb: width, beta: 1, c: dWeight, ldc: c)
        }
    }
}

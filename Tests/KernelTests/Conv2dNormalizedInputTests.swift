import XCTest
import Runtime
import Kernels
import CKernels

/// The 1x1 convolution of a normalised input that is never stored (Conv2d+NormalizedInput.swift)
/// against the plain references: BN+ReLU written out by `BatchNorm.forwardWithStatisticsReference`
/// (Double arithmetic), then `Conv2d.forwardReference`/`backwardReference`. Shapes give one tile
/// and many, tiles that do not divide the positions, more tiles than threads, one channel and
/// channels enough that the cache bound narrows the tile; every instruction-set level.
final class Conv2dNormalizedInputTests: XCTestCase {
    struct Case {
        let c: Int, m: Int, n: Int, h: Int, w: Int
        let bias: Bool
    }

    static let cases: [Case] = [
        Case(c: 1, m: 3, n: 3, h: 4, w: 5, bias: false),
        Case(c: 8, m: 12, n: 3, h: 5, w: 7, bias: true),
        Case(c: 20, m: 16, n: 7, h: 17, w: 13, bias: false),   // 1547 positions: several 512-wide tiles
        Case(c: 300, m: 24, n: 2, h: 9, w: 11, bias: true),    // the cache bound: 208-position tiles
    ]

    struct Operands {
        let x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor, weight: Tensor, bias: Tensor?
        let dy: Tensor
    }

    static func operands(_ k: Case, seed: UInt64) -> Operands {
        let x = Tensor.randomNormal([k.c, k.n, k.h, k.w], std: 2, seed: seed)
        // Means near the data's and negative betas, so the ReLU clips a good share.
        return Operands(x: x,
                        gamma: Tensor.randomUniform([k.c], low: 0.5, high: 1.5, seed: seed &* 103 + 1),
                        beta: Tensor.randomUniform([k.c], low: -0.6, high: 0.6, seed: seed &* 101 + 2),
                        mean: Tensor.randomUniform([k.c], low: -0.3, high: 0.3, seed: seed &* 107 + 3),
                        invStd: Tensor.randomUniform([k.c], low: 0.4, high: 0.6, seed: seed + 4),
                        weight: Tensor.randomNormal([k.m, k.c, 1, 1], std: 0.3, seed: seed + 5),
                        bias: k.bias ? Tensor.randomNormal([k.m], seed: seed + 6) : nil,
                        dy: Tensor.randomNormal([k.m, k.n, k.h, k.w], seed: seed + 7))
    }

    /// relu(bn(x)) written out by the Double reference.
    static func normalized(_ o: Operands) -> Tensor {
        let y = Tensor(shape: o.x.shape)
        BatchNorm.forwardWithStatisticsReference(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd,
                                                 relu: true, into: y)
        return y
    }

    func testForwardMatchesTheReference() {
        for level in KernelLevel.supported {
            for (i, k) in Self.cases.enumerated() {
                let o = Self.operands(k, seed: UInt64(10 * i + 1))
                let expected = Tensor(shape: o.dy.shape)
                Conv2d.forwardReference(Self.normalized(o), weight: o.weight, bias: o.bias, ConvParameters(kernel: 1),
                                        into: expected)
                XCTAssertGreaterThan(Self.normalized(o).array.max() ?? 0, 0.5, "\(k): the ReLU must not clip everything")
                for threads in [1, 2, 3] {
                    for product in [Conv2d.ThinKernelUse.off, .always] {
                        let y = Tensor.filled(o.dy.shape, 7)  // overwritten
                        Conv2d.smallProductKernel = product
                        KernelLevel.with(level) {
                            withThreadCount(threads) {
                                Conv2d.pointwiseForwardNormalized(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                                  invStd: o.invStd, weight: o.weight, bias: o.bias, into: y)
                            }
                        }
                        Conv2d.smallProductKernel = .measured
                        XCTAssertLessThanOrEqual(GradientCheck.relativeError(y.array, expected.array), 1e-5,
                                                 "\(level) \(k) \(threads) threads, own product \(product)")
                    }
                }
            }
        }
    }

    /// The unpacked product (GemmSmallMTemplate.h) on every level against the definition: row
    /// blocks of the level, of 4 and single rows, two-vector and one-vector column blocks and a
    /// scalar tail, strides wider than the matrices, C overwritten and nothing past n written;
    /// with streaming stores too, on a C whose start and row stride are vector-aligned (which
    /// streams) and on one whose stride is not (which stores as usual); and with A read from its
    /// transpose (k × m, stride lda); and C added to (CK_GEMM_ACCUMULATE). Widths that are not a
    /// whole number of vectors end with a vector overlapping the one before (n ≥ the level's
    /// lanes) or scalars (fewer).
    func testSmallProductOnEveryLevel() {
        let (stream, transposed, accumulate) = (CK_GEMM_STREAM, CK_GEMM_A_TRANSPOSED, CK_GEMM_ACCUMULATE)
        for level in KernelLevel.supported where level != .swiftReference {
            let table = ck_kernels_for_level(Int32(level.rawValue))!
            for (m, n, k) in [(13, 37, 5), (48, 288, 216), (1, 16, 1), (25, 100, 33), (7, 3, 9), (128, 70, 48),
                              (48, 204, 40), (12, 21, 7)] {
              let aligned = (n + 15) / 16 * 16 + 16
              for (flags, ldc) in [(Int32(0), n + 2), (stream, n + 2), (stream, aligned), (transposed, n + 2),
                                   (stream | transposed, aligned), (accumulate, n + 2), (accumulate | transposed, n + 3),
                                   (accumulate | stream, aligned)] {
                let isTransposed = flags & transposed != 0, adds = flags & accumulate != 0
                let (lda, ldb) = (isTransposed ? m + 3 : k + 3, n + 5)
                let storage = Tensor.randomNormal([(isTransposed ? k : m) * lda], seed: UInt64(m)).array
                // A's element (i, l), wherever it is stored.
                let a = (0..<m).flatMap { i in (0..<k).map { l in isTransposed ? storage[l * lda + i] : storage[i * lda + l] } }
                let b = Tensor.randomNormal([k * ldb], seed: UInt64(n)).array
                let start = Tensor.randomNormal([m * ldc], seed: 3).array
                let output = Tensor(shape: [m * ldc], values: start)   // 64-byte aligned
                storage.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        table.pointee.gemm_small_m(pa.baseAddress!, lda, pb.baseAddress!, ldb, m, n, k, output.pointer, ldc, flags)
                    }
                }
                let c = output.array
                var worst: Float = 0
                for i in 0..<m {
                    for j in 0..<ldc {
                        let at = i * ldc + j
                        if j >= n { XCTAssertEqual(c[at], start[at], "\(level) \(m)x\(n)x\(k): wrote past n"); continue }
                        var sum = adds ? Double(start[at]) : 0
                        for l in 0..<k { sum += Double(a[i * k + l]) * Double(b[l * ldb + j]) }
                        worst = max(worst, abs(c[at] - Float(sum)) / max(1, abs(Float(sum))))
                    }
                }
                // Float sums of k products: rounding grows with k (~1.5e-5 at k = 216).
                XCTAssertLessThanOrEqual(worst, 2e-7 * Float(k) + 1e-6, "\(level) \(m)x\(n)x\(k) flags \(flags) ldc \(ldc)")
              }
            }
        }
    }

    /// The weight gradient's transposed tiles (`normalize_transposed`) hold normalize_row's bits,
    /// on every level: fewer channels or positions than a vector (scalars), and edges where the
    /// last block overlaps the one before; nothing outside the tile is written.
    func testTransposedTileHoldsTheRowKernelsBits() {
        for level in KernelLevel.supported where level != .swiftReference {
            let table = ck_kernels_for_level(Int32(level.rawValue))!
            for (channels, width) in [(5, 7), (16, 16), (20, 37), (33, 300), (3, 40), (40, 3)] {
                let ldx = width + 9, ldt = channels + 2
                let x = Tensor.randomNormal([channels * ldx], std: 2, seed: UInt64(channels * 1000 + width))
                let mean = Tensor.randomUniform([channels], low: -0.3, high: 0.3, seed: 1)
                let gamma = Tensor.randomUniform([channels], low: 0.5, high: 1.5, seed: 2)
                let invStd = Tensor.randomUniform([channels], low: 0.4, high: 0.6, seed: 3)
                let beta = Tensor.randomUniform([channels], low: -0.6, high: 0.6, seed: 4)
                let t = Tensor.filled([width * ldt], 7), row = Tensor(shape: [width])
                table.pointee.normalize_transposed(x.pointer, ldx, channels, width, mean.pointer, gamma.pointer,
                                                   invStd.pointer, beta.pointer, t.pointer, ldt)
                let tile = t.array
                for c in 0..<channels {
                    table.pointee.normalize_row(x.pointer + c * ldx, width, mean[c], gamma[c] * invStd[c], beta[c], 1,
                                                row.pointer)
                    let column = (0..<width).map { tile[$0 * ldt + c] }
                    XCTAssertEqual(column.map(\.bitPattern), row.array.map(\.bitPattern), "\(level) \(channels)x\(width): channel \(c)")
                }
                for p in 0..<width {
                    XCTAssertEqual(tile[(p * ldt + channels)..<(p * ldt + ldt)].map { $0 }, [7, 7], "\(level): wrote past the channels")
                }
                XCTAssertTrue(tile.contains(0) && tile.contains { $0 > 0 }, "\(level): the ReLU must clip some, not all")
            }
        }
    }

    func testWeightGradientAccumulatesAndMatchesTheReference() {
        for level in KernelLevel.supported {
            for (i, k) in Self.cases.enumerated() {
                let o = Self.operands(k, seed: UInt64(10 * i + 2))
                let start = Tensor.randomNormal(o.weight.shape, seed: 99)
                let biasStart = Tensor.randomNormal([k.m], seed: 98)
                let expected = start.copy(), expectedBias = biasStart.copy()
                Conv2d.backwardReference(o.dy, x: Self.normalized(o), weight: o.weight, ConvParameters(kernel: 1),
                                         dx: nil, dWeight: expected, dBias: expectedBias)
                for threads in [1, 2, 3] {
                    let dWeight = start.copy(), dBias = biasStart.copy()
                    KernelLevel.with(level) {
                        withThreadCount(threads) {
                            Conv2d.pointwiseWeightGradientNormalized(o.dy, x: o.x, gamma: o.gamma, beta: o.beta,
                                                                     mean: o.mean, invStd: o.invStd, dWeight: dWeight,
                                                                     dBias: k.bias ? dBias : nil)
                        }
                    }
                    XCTAssertLessThanOrEqual(GradientCheck.relativeError(dWeight.array, expected.array), 2e-5,
                                             "\(level) \(k) \(threads) threads: dWeight")
                    if k.bias {
                        XCTAssertLessThanOrEqual(GradientCheck.relativeError(dBias.array, expectedBias.array), 2e-5,
                                                 "\(level) \(k) \(threads) threads: dBias")
                    } else {
                        XCTAssertEqual(dBias.array, biasStart.array)
                    }
                    XCTAssertGreaterThan(GradientCheck.relativeError(dWeight.array, start.array), 1e-3,
                                         "\(k): the gradient must change dWeight")
                }
            }
        }
    }

    /// The operand the products see is the unfused forward's bit for bit (the same row kernel),
    /// so with one tile the forward equals the unfused pair exactly.
    func testOneTileEqualsTheUnfusedPathExactly() {
        let k = Case(c: 8, m: 12, n: 1, h: 4, w: 4, bias: false)
        let o = Self.operands(k, seed: 5)
        let normalized = Tensor(shape: o.x.shape)
        BatchNorm.forwardWithStatistics(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd, relu: true,
                                        into: normalized)
        let unfused = Tensor(shape: o.dy.shape), fused = Tensor(shape: o.dy.shape)
        withThreadCount(1) {
            Conv2d.forward(normalized, weight: o.weight, bias: nil, ConvParameters(kernel: 1), into: unfused)
            Conv2d.pointwiseForwardNormalized(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd,
                                              weight: o.weight, bias: nil, into: fused)
        }
        XCTAssertEqual(fused.array, unfused.array)
    }

    func testTiling() {
        // One tile per thread where the positions are few; 512 at most; the cache bound (64 Ki floats).
        XCTAssertEqual(Conv2d.NormalizedTiling(channels: 8, positions: 100, threads: 2),
                       Conv2d.NormalizedTiling(channels: 8, positions: 100, threads: 2))
        let few = Conv2d.NormalizedTiling(channels: 8, positions: 100, threads: 2)
        XCTAssertEqual([few.tile, few.tiles, few.parts], [64, 2, 2])
        let many = Conv2d.NormalizedTiling(channels: 216, positions: 65536, threads: 2)
        XCTAssertEqual([many.tile, many.tiles, many.parts], [288, 228, 2])
        let wide = Conv2d.NormalizedTiling(channels: 16, positions: 65536, threads: 16)
        XCTAssertEqual([wide.tile, wide.tiles, wide.parts], [512, 128, 16])
        let tiny = Conv2d.NormalizedTiling(channels: 4, positions: 5, threads: 8)
        XCTAssertEqual([tiny.tile, tiny.tiles, tiny.parts], [5, 1, 1])
        XCTAssertEqual(many.positions(227, of: 65536), 65376..<65536)
        // Whole rounds: 1568 positions of 640 channels on 16 threads, cache bound 96 positions.
        let rounds = Conv2d.NormalizedTiling(channels: 640, positions: 1568, threads: 16)
        XCTAssertEqual([rounds.tile, rounds.tiles, rounds.parts], [64, 25, 16])
        // Rounds are balanced down to `narrowest` only (992 channels, 1568 positions, 2 threads:
        // 256-wide bound, 7 tiles; 8 tiles of 208 would balance them), below it for the threads.
        let wideChannels = Conv2d.NormalizedTiling(channels: 992, positions: 1568, threads: 2, floats: 256 * 992, narrowest: 256)
        XCTAssertEqual([wideChannels.tile, wideChannels.tiles], [256, 7])
        let wideMany = Conv2d.NormalizedTiling(channels: 992, positions: 1568, threads: 16, floats: 256 * 992, narrowest: 256)
        XCTAssertEqual([wideMany.tile, wideMany.tiles], [112, 14])
        // No thread ever takes more rounds than the cache bound needs, and a tile never exceeds it.
        for channels in [48, 200, 640, 992] {
            for positions in [392, 1568, 6272, 25088, 65536] {
                for threads in [1, 2, 3, 4, 8, 16] {
                    let t = Conv2d.NormalizedTiling(channels: channels, positions: positions, threads: threads)
                    let byCache = max(16, min(512, (1 << 16) / channels / 16 * 16))
                    let fewest = ((positions + byCache - 1) / byCache + threads - 1) / threads
                    let label = "\(channels) channels, \(positions) positions, \(threads) threads"
                    XCTAssertLessThanOrEqual(t.tile, byCache, label)
                    XCTAssertEqual((t.tiles + t.parts - 1) / t.parts, fewest, label)
                    XCTAssertGreaterThanOrEqual(t.tile * t.tiles, positions, label)
                    XCTAssertLessThan(t.tile * (t.tiles - 1), positions, label)
                }
            }
        }
    }

    /// In a dry run nothing is touched (the storages point at no-access memory) and the scratch
    /// counted is what a real call allocates.
    func testDryRunCountsTheRealScratch() {
        let k = Case(c: 20, m: 16, n: 7, h: 17, w: 13, bias: false)
        let o = Self.operands(k, seed: 3)
        let y = Tensor(shape: o.dy.shape), dWeight = Tensor.zeros(o.weight.shape)
        withThreadCount(2) {
            Memory.resetPeak()
            let before = Memory.active(.scratch)
            Conv2d.pointwiseForwardNormalized(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd,
                                              weight: o.weight, bias: nil, into: y)
            let forwardPeak = Memory.peak(.scratch) - before
            Memory.resetPeak()
            Conv2d.pointwiseWeightGradientNormalized(o.dy, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                     invStd: o.invStd, dWeight: dWeight, dBias: nil)
            let backwardPeak = Memory.peak(.scratch) - before
            let (_, dryRun) = DryRun.run(threads: 2) { _ in
                let vx = Tensor(shape: o.x.shape), vy = Tensor(shape: o.dy.shape), vw = Tensor(shape: o.weight.shape)
                let stats = (0..<4).map { _ in Tensor(shape: [k.c]) }
                Conv2d.pointwiseForwardNormalized(vx, gamma: stats[0], beta: stats[1], mean: stats[2], invStd: stats[3],
                                                  weight: vw, bias: nil, into: vy)
                Conv2d.pointwiseWeightGradientNormalized(vy, x: vx, gamma: stats[0], beta: stats[1], mean: stats[2],
                                                         invStd: stats[3], dWeight: vw, dBias: nil)
            }
            // 7·17·13 = 1547 positions, 2 threads: two rounds of 2 tiles of 400 (4 tiles either way
            // under the 512 bound), 2 parts; 20·400 floats each.
            XCTAssertEqual(forwardPeak, Memory.byteCount(elements: 2 * 20 * 400))
            XCTAssertEqual(backwardPeak, Memory.byteCount(elements: 2 * 20 * 400) + Memory.byteCount(elements: 16 * 20))
            XCTAssertEqual(dryRun.ledger.peakByCategory[MemoryCategory.allCases.firstIndex(of: .scratch)!], backwardPeak)
        }
    }
}

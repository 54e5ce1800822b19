import XCTest
import Runtime
import Kernels

/// The input gradient of the normalised 1x1 convolution taken tile by tile
/// (Conv2d+NormalizedInputGradient.swift) and the statistics part added later
/// (BatchNorm+StatisticsGradient.swift) against the Double references: Wᵀ·dy by
/// `Conv2d.backwardReference`, then `BatchNorm.backwardWithFixedStatisticsReference` or, in
/// training, `BatchNorm.backwardReference`. The shapes of Conv2dNormalizedInputTests (one tile,
/// many, a cache-narrowed tile), every level, 1–3 threads.
final class Conv2dNormalizedInputGradientTests: XCTestCase {
    typealias Case = Conv2dNormalizedInputTests.Case

    /// Wᵀ·dy, the gradient of the normalised input before the ReLU and batch norm.
    static func productGradient(_ o: Conv2dNormalizedInputTests.Operands) -> Tensor {
        let g = Tensor.zeros(o.x.shape)
        Conv2d.backwardReference(o.dy, x: o.x, weight: o.weight, ConvParameters(kernel: 1), dx: g, dWeight: nil, dBias: nil)
        return g
    }

    /// With the statistics fixed the kernel is the whole gradient: dx accumulates, the sums are
    /// dBeta's and dGamma's.
    func testFixedStatisticsPartMatchesTheReference() {
        for level in KernelLevel.supported {
            for (i, k) in Conv2dNormalizedInputTests.cases.enumerated() {
                let o = Conv2dNormalizedInputTests.operands(k, seed: UInt64(10 * i + 3))
                let start = Tensor.randomNormal(o.x.shape, seed: 77)
                let expected = start.copy(), expectedDy = Tensor.zeros([k.c]), expectedDyXhat = Tensor.zeros([k.c])
                BatchNorm.backwardWithFixedStatisticsReference(Self.productGradient(o), x: o.x, gamma: o.gamma, beta: o.beta,
                                                               mean: o.mean, invStd: o.invStd, relu: true, dx: expected,
                                                               dGamma: expectedDyXhat, dBeta: expectedDy)
                for threads in [1, 2, 3] {
                    let dx = start.copy(), sumDy = Tensor.filled([k.c], 1), sumDyXhat = Tensor.filled([k.c], 1)
                    KernelLevel.with(level) {
                        withThreadCount(threads) {
                            Conv2d.pointwiseInputGradientNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma,
                                                                    beta: o.beta, mean: o.mean, invStd: o.invStd, dx: dx,
                                                                    sumDy: sumDy, sumDyXhat: sumDyXhat)
                        }
                    }
                    let label = "\(level) \(k) \(threads) threads"
                    XCTAssertLessThanOrEqual(GradientCheck.relativeError(dx.array, expected.array), 2e-5, "\(label): dx")
                    // The sums accumulate onto the 1 they started at.
                    XCTAssertLessThanOrEqual(GradientCheck.relativeError(sumDy.array, expectedDy.array.map { $0 + 1 }), 2e-5,
                                             "\(label): sumDy")
                    XCTAssertLessThanOrEqual(GradientCheck.relativeError(sumDyXhat.array, expectedDyXhat.array.map { $0 + 1 }),
                                             2e-5, "\(label): sumDyXhat")
                    XCTAssertGreaterThan(GradientCheck.relativeError(dx.array, start.array), 1e-3, "\(label): dx must change")
                }
            }
        }
    }

    /// Two batch norms on the same channels with the same statistics but their own gamma, beta
    /// and product (two dense layers' norm1): fixed-statistics parts into one dx, terms added up,
    /// the statistics part applied once, equal the two training-mode backward passes.
    func testStatisticsPartAddedOnceEqualsEachTrainingBackward() {
        for level in KernelLevel.supported {
            for (i, k) in Conv2dNormalizedInputTests.cases.enumerated() {
                let first = Conv2dNormalizedInputTests.operands(k, seed: UInt64(10 * i + 4))
                let other = Conv2dNormalizedInputTests.operands(k, seed: UInt64(10 * i + 5))
                // The second layer: the first's x and statistics, its own parameters and gradient.
                let second = Conv2dNormalizedInputTests.Operands(x: first.x, gamma: other.gamma, beta: other.beta,
                                                                 mean: first.mean, invStd: first.invStd,
                                                                 weight: other.weight, bias: nil, dy: other.dy)
                let start = Tensor.randomNormal(first.x.shape, seed: 78)
                let expected = start.copy()
                for o in [first, second] {
                    BatchNorm.backwardReference(Self.productGradient(o), x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                invStd: o.invStd, relu: true, dx: expected, dGamma: nil, dBeta: nil)
                }
                let positions = first.x.count / k.c
                for threads in [1, 3] {
                    let dx = start.copy(), a = Tensor.zeros([k.c]), b = Tensor.zeros([k.c])
                    KernelLevel.with(level) {
                        withThreadCount(threads) {
                            for o in [first, second] {
                                let sumDy = Tensor.zeros([k.c]), sumDyXhat = Tensor.zeros([k.c])
                                Conv2d.pointwiseInputGradientNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma,
                                                                        beta: o.beta, mean: o.mean, invStd: o.invStd,
                                                                        dx: dx, sumDy: sumDy, sumDyXhat: sumDyXhat)
                                BatchNorm.addStatisticsGradientTerms(gamma: o.gamma, sumDy: sumDy, sumDyXhat: sumDyXhat,
                                                                     count: positions, a: a, b: b)
                            }
                            BatchNorm.accumulateStatisticsGradient(x: first.x, mean: first.mean, invStd: first.invStd,
                                                                   a: a, b: b, dx: dx)
                        }
                    }
                    XCTAssertLessThanOrEqual(GradientCheck.relativeError(dx.array, expected.array), 5e-5,
                                             "\(level) \(k) \(threads) threads")
                }
            }
        }
    }

    /// The statistics part's vector rows (with tails of 1–7) against its Double reference.
    func testStatisticsGradientMatchesItsReference() {
        for (c, n, h, w) in [(3, 2, 3, 5), (5, 1, 9, 9), (1, 4, 4, 4)] {
            let x = Tensor.randomNormal([c, n, h, w], std: 2, seed: UInt64(c))
            let mean = Tensor.randomUniform([c], low: -0.5, high: 0.5, seed: 2)
            let invStd = Tensor.randomUniform([c], low: 0.4, high: 0.9, seed: 3)
            let a = Tensor.randomNormal([c], seed: 4), b = Tensor.randomNormal([c], seed: 5)
            let start = Tensor.randomNormal(x.shape, seed: 6)
            let expected = start.copy(), dx = start.copy()
            BatchNorm.accumulateStatisticsGradientReference(x: x, mean: mean, invStd: invStd, a: a, b: b, dx: expected)
            withThreadCount(2) { BatchNorm.accumulateStatisticsGradient(x: x, mean: mean, invStd: invStd, a: a, b: b, dx: dx) }
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(dx.array, expected.array), 1e-6, "\([c, n, h, w])")
            XCTAssertGreaterThan(GradientCheck.relativeError(dx.array, start.array), 1e-3, "\([c, n, h, w]): dx must change")
        }
    }

    /// Without a workspace the tiles and sums are counted scratch, the same in a dry run; with one
    /// nothing is allocated.
    func testDryRunCountsTheRealScratch() {
        let k = Case(c: 20, m: 16, n: 7, h: 17, w: 13, bias: false)
        let o = Conv2dNormalizedInputTests.operands(k, seed: 3)
        let dx = Tensor.zeros(o.x.shape), sums = (Tensor.zeros([k.c]), Tensor.zeros([k.c]))
        withThreadCount(2) {
            // 1547 positions on 2 threads: two rounds of 2 tiles of 400 (the cache bound, 512, would make 4
            // tiles too), 2 parts of a tile (+ 2 rows of sums) of 20 channels.
            XCTAssertEqual(Conv2d.normalizedInputGradientWorkspace(o.x), 2 * 20 * (400 + 2))
            let before = Memory.active(.scratch)
            Memory.resetPeak()
            Conv2d.pointwiseInputGradientNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma, beta: o.beta,
                                                    mean: o.mean, invStd: o.invStd, dx: dx, sumDy: sums.0, sumDyXhat: sums.1)
            XCTAssertEqual(Memory.peak(.scratch) - before, Memory.byteCount(elements: 2 * 20 * 402))
            let workspace = Tensor(shape: [2 * 20 * 402])
            Memory.resetPeak()
            let withWorkspace = Memory.active(.scratch)
            Conv2d.pointwiseInputGradientNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma, beta: o.beta,
                                                    mean: o.mean, invStd: o.invStd, dx: dx, sumDy: sums.0,
                                                    sumDyXhat: sums.1, workspace: workspace)
            XCTAssertEqual(Memory.peak(.scratch), withWorkspace)
            let (_, dryRun) = DryRun.run(threads: 2) { _ in
                let vx = Tensor(shape: o.x.shape), vdy = Tensor(shape: o.dy.shape), vw = Tensor(shape: o.weight.shape)
                let stats = (0..<6).map { _ in Tensor(shape: [k.c]) }
                Conv2d.pointwiseInputGradientNormalized(vdy, x: vx, weight: vw, gamma: stats[0], beta: stats[1],
                                                        mean: stats[2], invStd: stats[3], dx: vx, sumDy: stats[4],
                                                        sumDyXhat: stats[5])
            }
            XCTAssertEqual(dryRun.ledger.peakByCategory[MemoryCategory.allCases.firstIndex(of: .scratch)!],
                           Memory.byteCount(elements: 2 * 20 * 402))
        }
    }

    /// The one-pass backward gives exactly what its two kernels give (the same tiles, products
    /// and row kernels in the same order): dWeight, dBias, dx and the sums, bit for bit, with its
    /// sums in counted scratch or in a given workspace; every level, 1-3 threads.
    func testOnePassBackwardEqualsTheTwoKernels() {
        for level in KernelLevel.supported {
            for (i, k) in Conv2dNormalizedInputTests.cases.enumerated() {
                let o = Conv2dNormalizedInputTests.operands(k, seed: UInt64(10 * i + 6))
                let startW = Tensor.randomNormal(o.weight.shape, seed: 91), startB = Tensor.randomNormal([k.m], seed: 92)
                let startX = Tensor.randomNormal(o.x.shape, seed: 93)
                for threads in [1, 2, 3] {
                    KernelLevel.with(level) {
                        withThreadCount(threads) {
                            let w2 = startW.copy(), b2 = startB.copy(), x2 = startX.copy()
                            let s2 = (Tensor.zeros([k.c]), Tensor.zeros([k.c]))
                            Conv2d.pointwiseWeightGradientNormalized(o.dy, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                                     invStd: o.invStd, dWeight: w2, dBias: b2)
                            Conv2d.pointwiseInputGradientNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma,
                                                                    beta: o.beta, mean: o.mean, invStd: o.invStd, dx: x2,
                                                                    sumDy: s2.0, sumDyXhat: s2.1)
                            for workspace in [nil, Tensor(shape: [Conv2d.normalizedBackwardSumsFloats(o.x) + 5])] {
                                let w1 = startW.copy(), b1 = startB.copy(), x1 = startX.copy()
                                let s1 = (Tensor.zeros([k.c]), Tensor.zeros([k.c]))
                                Conv2d.pointwiseBackwardNormalized(o.dy, x: o.x, weight: o.weight, gamma: o.gamma, beta: o.beta,
                                                                   mean: o.mean, invStd: o.invStd, dWeight: w1, dBias: b1,
                                                                   dx: x1, sumDy: s1.0, sumDyXhat: s1.1, workspace: workspace)
                                let label = "\(level) \(k) \(threads) threads, workspace \(workspace != nil)"
                                XCTAssertEqual(w1.array, w2.array, "\(label): dWeight")
                                XCTAssertEqual(b1.array, b2.array, "\(label): dBias")
                                XCTAssertEqual(x1.array, x2.array, "\(label): dx")
                                XCTAssertEqual(s1.0.array, s2.0.array, "\(label): sumDy")
                                XCTAssertEqual(s1.1.array, s2.1.array, "\(label): sumDyXhat")
                            }
                            XCTAssertGreaterThan(GradientCheck.relativeError(w2.array, startW.array), 1e-3, "\(k): dWeight must change")
                        }
                    }
                }
            }
        }
    }
}

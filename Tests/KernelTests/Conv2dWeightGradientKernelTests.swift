import XCTest
import Runtime
import Kernels

/// The thin 3x3 weight gradient kernel (Conv2d+Microkernel.swift,
/// Sources/CKernels/Conv3x3WeightGradientTemplate.h) on every instruction-set level the CPU
/// supports, against the reference weight gradient (Conv2d+Reference.swift), which
/// Conv2dTests checks against finite differences; and once against finite differences itself.
/// `checkAgainstReference` starts dW from random values, so accumulation is checked. The
/// backward's workspace holds 3·Cout rows of each thread's columns and the kernel needs its
/// smallest chunk (three slots of every channel), so the tiny images come in large batches.
final class Conv2dWeightGradientKernelTests: XCTestCase {
    static let cases: [ConvCase] = [
        // 48→12 (densenet-bc-100-12), one image of 32x32.
        ConvCase(cin: 48, cout: 12, n: 1, h: 32, w: 32, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        // 128→32 (densenet121), 8x8 images; Cin = 13 and 7, not a multiple of the input block.
        ConvCase(cin: 128, cout: 32, n: 6, h: 8, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 13, cout: 12, n: 3, h: 8, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: true),
        ConvCase(cin: 7, cout: 32, n: 2, h: 8, w: 7, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        // Rows wider than two vectors and not a multiple of one; 2x2 and 1x1 images.
        ConvCase(cin: 20, cout: 12, n: 2, h: 6, w: 33, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 5, cout: 12, n: 20, h: 2, w: 2, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 9, cout: 12, n: 100, h: 1, w: 1, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        // Cout not a multiple of the output block.
        ConvCase(cin: 3, cout: 5, n: 4, h: 6, w: 6, p: ConvParameters(kernel: 3, padding: 1), bias: false),
    ]

    override func setUp() { Conv2d.thinKernels = .always }
    override func tearDown() { Conv2d.thinKernels = .measured }

    /// With dx (threads own whole images, ranges of positions or input channels) and without (threads own column
    /// ranges that start and end inside rows), on 1, 2 and 3 threads.
    func testEveryLevelMatchesTheReference() {
        forEveryKernelLevelAndThreads(Self.cases) { level, c, threads in
            for inputGradient in [true, false] {
                let before = Conv2d.thinWeightGradientCalls
                checkAgainstReference(c, context: "\(level), \(threads) threads, dx \(inputGradient)",
                                      inputGradient: inputGradient)
                XCTAssertEqual(Conv2d.thinWeightGradientCalls - before, 1,
                               "\(level) \(c) \(threads) threads: the weight gradient kernel did not run")
            }
        }
    }

    /// Several chunks per thread: a workspace limit that leaves each thread tiles of 60 columns,
    /// 2160 floats, so chunks of two rows of 10 (4 slots of 11 floats, up to 16 leading zeros and
    /// a vector of slack: 80 floats for each of 25 channels).
    func testSmallChunks() {
        let c = ConvCase(cin: 13, cout: 12, n: 3, h: 9, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        for level in KernelLevel.supported where level != .swiftReference {
            for threads in [1, 2] {
                let before = Conv2d.thinWeightGradientCalls
                KernelLevel.with(level) {
                    withConvSettings(threads: threads, workspace: threads * (3 * 12 * 60 * 4 + Memory.alignment)) {
                        checkAgainstReference(c, context: "\(level), small chunks, \(threads) threads")
                        checkAgainstReference(c, context: "\(level), small chunks, \(threads) threads, no dx",
                                              inputGradient: false)
                    }
                }
                XCTAssertEqual(Conv2d.thinWeightGradientCalls - before, 2, "\(level): the kernel did not run")
            }
        }
    }

    /// dW by the kernel (at the best level) against central differences of the reference forward.
    func testMatchesFiniteDifferences() {
        let c = ConvCase(cin: 3, cout: 4, n: 2, h: 4, w: 5, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let x = Tensor.randomUniform(c.inputShape, seed: 31)
        let w = Tensor.randomUniform(c.weightShape, seed: 32)
        let y = Tensor(shape: c.outputShape)
        let weights = Tensor.randomUniform(c.outputShape, seed: 33)   // loss = Σ weights·y, so dy = weights
        let loss = { () -> Double in
            Conv2d.forwardReference(x, weight: w, bias: nil, c.p, into: y)
            return GradientCheck.weightedSum(y, weights.array)
        }
        let dw = Tensor.zeros(c.weightShape)
        let before = Conv2d.thinWeightGradientCalls
        withConvSettings(threads: 1, workspace: Conv2d.workspaceLimitBytes) {
            Conv2d.backward(weights, x: x, weight: w, c.p, dx: nil, dWeight: dw, dBias: nil)
        }
        XCTAssertEqual(Conv2d.thinWeightGradientCalls - before, 1)
        XCTAssertLessThan(GradientCheck.relativeError(dw.array, GradientCheck.numericalGradient(of: w, loss)), 1e-3)
    }

    /// Where it was measured faster only: Cout 32 (128→32) on AVX2 and AVX-512 from 4096
    /// positions (`Conv2d.thinBackwardMinimumColumns`), not Cout 12 (48→12), never on the
    /// baseline level.
    func testMeasuredPolicy() {
        Conv2d.thinKernels = .measured
        let thin = ConvCase(cin: 16, cout: 12, n: 2, h: 12, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let wideFew = ConvCase(cin: 16, cout: 32, n: 2, h: 12, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let wide = ConvCase(cin: 16, cout: 32, n: 2, h: 48, w: 48, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        for level in KernelLevel.supported where level != .swiftReference {
            for (c, expected) in [(thin, 0), (wideFew, 0), (wide, level == .baseline ? 0 : 1)] {
                let before = Conv2d.thinWeightGradientCalls
                KernelLevel.with(level) {
                    withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
                        checkAgainstReference(c, context: "measured, \(level)")
                    }
                }
                XCTAssertEqual(Conv2d.thinWeightGradientCalls - before, expected, "\(level) \(c)")
            }
            // The input gradient kernel follows the same rule for 32 outputs and more.
            for (c, expected) in [(wideFew, 0), (wide, level == .baseline ? 0 : 1)] {
                let x = Tensor.randomUniform(c.inputShape, seed: 5), w = Tensor.randomUniform(c.weightShape, seed: 6)
                let dy = Tensor.randomUniform(c.outputShape, seed: 7), dx = Tensor.zeros(c.inputShape)
                let before = Conv2d.thinKernelCalls
                KernelLevel.with(level) {
                    withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
                        Conv2d.backward(dy, x: x, weight: w, c.p, dx: dx, dWeight: nil, dBias: nil)
                    }
                }
                XCTAssertEqual(Conv2d.thinKernelCalls - before, expected, "dx, \(level) \(c)")
            }
        }
    }

    /// Switched off, or with a workspace too small for one chunk, dW goes per tap and agrees.
    func testOffAndSmallWorkspacesFallBack() {
        let c = ConvCase(cin: 48, cout: 12, n: 2, h: 8, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let before = Conv2d.thinWeightGradientCalls
        withConvSettings(threads: 1, workspace: 3 * 12 * 16 * 4 + Memory.alignment) {
            checkAgainstReference(c, context: "small workspace")
        }
        Conv2d.thinKernels = .off
        withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
            checkAgainstReference(c, context: "kernels off")
        }
        XCTAssertEqual(Conv2d.thinWeightGradientCalls, before)
    }
}

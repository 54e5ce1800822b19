import XCTest
import Runtime
import Kernels

/// The thin 3x3 kernel (Conv2d+Microkernel.swift, Sources/CKernels/Conv3x3Template.h) on every
/// instruction-set level the CPU supports, against the reference convolution: rows narrower and
/// wider than a vector, one-row images, thread ranges that start and end inside rows, and the
/// per-tap path's fallback when a workspace is too small for the padded rows (the forward's
/// workspace holds Cout rows of each thread's columns and the kernel needs three padded rows of
/// every input channel, so the shapes here are large enough for both on three threads).
final class Conv2dMicrokernelTests: XCTestCase {
    static let cases: [ConvCase] = [
        ConvCase(cin: 8, cout: 12, n: 3, h: 10, w: 7, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 12, cout: 8, n: 3, h: 12, w: 33, p: ConvParameters(kernel: 3, padding: 1), bias: true),
        ConvCase(cin: 4, cout: 4, n: 40, h: 1, w: 16, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 48, cout: 12, n: 18, h: 8, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false),
        ConvCase(cin: 16, cout: 32, n: 4, h: 3, w: 14, p: ConvParameters(kernel: 3, padding: 1), bias: false),
    ]

    override func setUp() { Conv2d.thinKernels = .always }
    override func tearDown() { Conv2d.thinKernels = .measured }

    func testEveryLevelMatchesTheReference() {
        forEveryKernelLevelAndThreads(Self.cases) { level, c, threads in
            let before = Conv2d.thinKernelCalls
            checkAgainstReference(c, context: "\(level), \(threads) threads")
            // Forward always; the input gradient when Cin is a whole number of blocks and
            // the threads own whole images or ranges of positions (or one thread does everything).
            XCTAssertGreaterThanOrEqual(Conv2d.thinKernelCalls - before, 1, "\(level) \(c): the kernel did not run")
        }
    }

    /// Batch 2 on 2 threads splits the backward by images, so both the forward and the input
    /// gradient run in the kernel; switched off, neither does, and both paths agree.
    func testKernelRunsForForwardAndInputGradientAndCanBeSwitchedOff() {
        let c = ConvCase(cin: 8, cout: 12, n: 2, h: 12, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
            XCTAssertEqual(Conv2d.backwardSplit(input: c.inputShape, weight: c.weightShape, c.p, inputGradient: true), .images)
            let before = Conv2d.thinKernelCalls
            checkAgainstReference(c, context: "kernel on")
            XCTAssertEqual(Conv2d.thinKernelCalls - before, 2, "forward and input gradient")
            Conv2d.thinKernels = .off
            checkAgainstReference(c, context: "kernel off")
            XCTAssertEqual(Conv2d.thinKernelCalls - before, 2)
        }
    }

    /// Where it was measured faster only: never on the baseline level, forward and input
    /// gradient on AVX2 and AVX-512.
    func testMeasuredPolicy() {
        Conv2d.thinKernels = .measured
        let thin = ConvCase(cin: 8, cout: 12, n: 2, h: 12, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        let wide = ConvCase(cin: 8, cout: 16, n: 2, h: 12, w: 10, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        for level in KernelLevel.supported where level != .swiftReference {
            for (c, expected) in [(thin, level == .baseline ? 0 : 2), (wide, level == .baseline ? 0 : 2)] {
                let before = Conv2d.thinKernelCalls
                KernelLevel.with(level) {
                    withConvSettings(threads: 2, workspace: Conv2d.workspaceLimitBytes) {
                        checkAgainstReference(c, context: "measured, \(level)")
                    }
                }
                XCTAssertEqual(Conv2d.thinKernelCalls - before, expected, "\(level) \(c)")
            }
        }
    }

    /// A workspace too small for the padded rows falls back to the per-tap path.
    func testSmallWorkspacesFallBack() {
        let c = ConvCase(cin: 48, cout: 12, n: 2, h: 8, w: 8, p: ConvParameters(kernel: 3, padding: 1), bias: false)
        withConvSettings(threads: 1, workspace: 12 * 64 * 4 + Memory.alignment) {
            let before = Conv2d.thinKernelCalls
            checkAgainstReference(c, context: "small workspace")
            XCTAssertEqual(Conv2d.thinKernelCalls, before)
        }
    }
}

import XCTest
import Runtime
import Kernels

/// The backward kernels that can write an input gradient instead of adding to it (a buffer
/// nothing was added to yet, Sources/Autograd/Graph.swift `recordWriting`): given a dx full of
/// NaN, every element must be written and none read, so the result equals the reference's
/// backward into zeros; and where they add, they still add.
final class OverwriteGradientTests: XCTestCase {
    private func poisoned(_ shape: [Int]) -> Tensor { Tensor.filled(shape, .nan) }

    private func assertFiniteAndClose(_ a: Tensor, _ b: Tensor, _ tolerance: Float, _ what: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(a.array.allSatisfy(\.isFinite), "\(what): an element was left unwritten (NaN) or read", file: file, line: line)
        OpsCheck.assertClose(a, b, tolerance, what, file: file, line: line)
    }

    func testBatchNormBackwardWritesEveryElementOfDx() {
        let x = OpsCheck.uniform([5, 3, 7, 9], seed: 1), dy = OpsCheck.uniform([5, 3, 7, 9], seed: 2)
        let gamma = OpsCheck.uniform([5], seed: 3, low: 0.5, high: 1.5), beta = OpsCheck.uniform([5], seed: 4)
        let mean = Tensor(shape: [5]), invStd = Tensor(shape: [5])
        BatchNorm.trainingStatistics(x, eps: 1e-5, mean: mean, invStd: invStd)
        for relu in [false, true] {
            for fixed in [false, true] {
                let expected = Tensor.zeros(x.shape)
                let dx = poisoned(x.shape)
                if fixed {
                    BatchNorm.backwardWithFixedStatisticsReference(dy, x: x, gamma: gamma, beta: beta, mean: mean,
                                                                   invStd: invStd, relu: relu, dx: expected, dGamma: nil, dBeta: nil)
                    BatchNorm.backwardWithFixedStatistics(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                          relu: relu, dx: dx, dGamma: nil, dBeta: nil, overwriteDx: true)
                } else {
                    BatchNorm.backwardReference(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                relu: relu, dx: expected, dGamma: nil, dBeta: nil)
                    BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                                       dx: dx, dGamma: nil, dBeta: nil, overwriteDx: true)
                }
                assertFiniteAndClose(dx, expected, 1e-4, "relu \(relu), fixed \(fixed)")
                // Without overwriteDx the same call adds: a second one doubles dx.
                if fixed {
                    BatchNorm.backwardWithFixedStatistics(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                          relu: relu, dx: dx, dGamma: nil, dBeta: nil)
                } else {
                    BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                                       dx: dx, dGamma: nil, dBeta: nil)
                }
                OpsCheck.assertClose(dx.array, expected.array.map { 2 * $0 }, 1e-4, "relu \(relu), fixed \(fixed), added")
            }
        }
    }

    func testConvolutionBackwardWritesEveryElementOfDx() {
        let cases: [(name: String, x: [Int], w: [Int], p: ConvParameters)] = [
            ("1x1", [24, 2, 6, 6], [12, 24, 1, 1], ConvParameters(kernel: 1)),
            ("3x3 48->12", [48, 2, 8, 8], [12, 48, 3, 3], ConvParameters(kernel: 3, padding: 1)),
            ("3x3 stride 2", [6, 2, 9, 9], [5, 6, 3, 3], ConvParameters(kernel: 3, stride: 2, padding: 1)),
        ]
        let saved = Conv2d.thinKernels
        defer { Conv2d.thinKernels = saved }
        for use in [Conv2d.ThinKernelUse.always, .off] {
            Conv2d.thinKernels = use
            for c in cases {
                let x = OpsCheck.uniform(c.x, seed: 5), w = OpsCheck.uniform(c.w, seed: 6)
                let dy = OpsCheck.uniform(Conv2d.outputShape(input: c.x, weight: c.w, c.p), seed: 7)
                let expected = Tensor.zeros(c.x), expectedW = Tensor.zeros(c.w)
                Conv2d.backwardReference(dy, x: x, weight: w, c.p, dx: expected, dWeight: expectedW, dBias: nil)
                for threads in [1, 2] {
                    withThreadCount(threads) {
                        let dx = poisoned(c.x), dW = Tensor.zeros(c.w)
                        Conv2d.backward(dy, x: x, weight: w, c.p, dx: dx, dWeight: dW, dBias: nil, overwriteDx: true)
                        let what = "\(c.name), thin kernels \(use), \(threads) threads"
                        assertFiniteAndClose(dx, expected, 1e-4, what)
                        OpsCheck.assertClose(dW, expectedW, 1e-4, "\(what): dW still added to zeros")
                        Conv2d.backward(dy, x: x, weight: w, c.p, dx: dx, dWeight: nil, dBias: nil)
                        OpsCheck.assertClose(dx.array, expected.array.map { 2 * $0 }, 1e-4, "\(what): added")
                    }
                }
            }
        }
    }

    func testConcatBackwardCopiesIntoFreshGradientsAndAddsToOthers() {
        let dy = OpsCheck.uniform([7, 2, 5, 5], seed: 8)
        let a = poisoned([3, 2, 5, 5]), b = OpsCheck.uniform([4, 2, 5, 5], seed: 9)
        let bBefore = b.array
        Concat.backward(dy, dxs: [a, b], overwriting: [true, false])
        XCTAssertEqual(a.array, Array(dy.array[0..<150]), "the fresh gradient is dy's slice, copied")
        XCTAssertEqual(b.array, zip(bBefore, dy.array[150...]).map { $0 + $1 }, "the other is added to")
        // One tensor given twice: written by its first slice, then added to by its second.
        let dy2 = OpsCheck.uniform([6, 2, 5, 5], seed: 10)
        let twice = poisoned([3, 2, 5, 5])
        withThreadCount(2) { Concat.backward(dy2, dxs: [twice, twice], overwriting: [true, false]) }
        let values = dy2.array
        XCTAssertEqual(twice.array, (0..<150).map { values[$0] + values[150 + $0] })
    }
}

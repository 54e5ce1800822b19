import XCTest
import Runtime
import Kernels

/// BN → ReLU → 2x2/2 average pooling in one pass (BatchNorm+AveragePool.swift) against the
/// unfused pair: `BatchNorm.forwardWithStatistics` then `Pooling.avgForward` (bit for bit: same
/// expressions, same order), and for the backward `Pooling.avgBackward` then `BatchNorm.backward`
/// / `backwardWithFixedStatistics`; even and odd sizes (a trailing row and column in no window).
final class BatchNormAveragePoolTests: XCTestCase {
    static let shapes: [[Int]] = [[3, 2, 4, 4], [5, 3, 5, 7], [2, 1, 2, 3], [4, 2, 9, 8]]

    struct Operands {
        let x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor, dy: Tensor
    }

    static func operands(_ shape: [Int], seed: UInt64) -> Operands {
        let c = shape[0]
        return Operands(x: Tensor.randomNormal(shape, std: 2, seed: seed),
                        gamma: Tensor.randomUniform([c], low: 0.5, high: 1.5, seed: seed &* 31 + 1),
                        beta: Tensor.randomUniform([c], low: -0.5, high: 0.5, seed: seed &* 37 + 2),
                        mean: Tensor.randomUniform([c], low: -0.3, high: 0.3, seed: seed &* 41 + 3),
                        invStd: Tensor.randomUniform([c], low: 0.4, high: 0.6, seed: seed &* 43 + 4),
                        dy: Tensor.randomNormal([c, shape[1], shape[2] / 2, shape[3] / 2], seed: seed &* 47 + 5))
    }

    func testForwardEqualsTheUnfusedPairBitForBit() {
        for (i, shape) in Self.shapes.enumerated() {
            let o = Self.operands(shape, seed: UInt64(i + 1))
            let normalized = Tensor(shape: shape)
            BatchNorm.forwardWithStatistics(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd, relu: true,
                                            into: normalized)
            let expected = Tensor(shape: o.dy.shape), fused = Tensor.filled(o.dy.shape, 3)
            Pooling.avgForward(normalized, PoolParameters(kernel: 2, stride: 2), into: expected)
            BatchNorm.normalizedAveragePoolForward(o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd,
                                                   into: fused)
            XCTAssertEqual(fused.array, expected.array, "\(shape)")
            XCTAssertGreaterThan(expected.array.max() ?? 0, 0.1, "\(shape): the ReLU must not clip everything")
        }
    }

    func testBackwardMatchesTheUnfusedPair() {
        for (i, shape) in Self.shapes.enumerated() {
            for fixedStatistics in [false, true] {
                let o = Self.operands(shape, seed: UInt64(10 + i))
                // Unfused: the pooled gradient spread over the windows, then batch norm's backward.
                let gradNormalized = Tensor.zeros(shape)
                Pooling.avgBackward(o.dy, PoolParameters(kernel: 2, stride: 2), dx: gradNormalized)
                let start = Tensor.randomNormal(shape, seed: 77), startGamma = Tensor.randomNormal([shape[0]], seed: 78)
                let dx = start.copy(), dGamma = startGamma.copy(), dBeta = Tensor.zeros([shape[0]])
                if fixedStatistics {
                    BatchNorm.backwardWithFixedStatistics(gradNormalized, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                          invStd: o.invStd, relu: true, dx: dx, dGamma: dGamma, dBeta: dBeta)
                } else {
                    BatchNorm.backward(gradNormalized, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean, invStd: o.invStd,
                                       relu: true, dx: dx, dGamma: dGamma, dBeta: dBeta)
                }
                // Fused.
                let sumDy = Tensor(shape: [shape[0]]), sumDyXhat = Tensor(shape: [shape[0]])
                BatchNorm.normalizedAveragePoolBackwardSums(o.dy, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                            invStd: o.invStd, sumDy: sumDy, sumDyXhat: sumDyXhat)
                let fusedGamma = startGamma.copy()
                Elementwise.accumulate(sumDyXhat, into: fusedGamma)
                XCTAssertLessThanOrEqual(GradientCheck.relativeError(fusedGamma.array, dGamma.array), 1e-5, "\(shape) dGamma")
                XCTAssertLessThanOrEqual(GradientCheck.relativeError(sumDy.array, dBeta.array), 1e-5, "\(shape) dBeta")
                if fixedStatistics { sumDy.zero(); sumDyXhat.zero() }
                let fusedDx = start.copy()
                BatchNorm.normalizedAveragePoolInputGradient(o.dy, x: o.x, gamma: o.gamma, beta: o.beta, mean: o.mean,
                                                             invStd: o.invStd, sumDy: sumDy, sumDyXhat: sumDyXhat,
                                                             count: o.x.count / shape[0], dx: fusedDx)
                XCTAssertLessThanOrEqual(GradientCheck.relativeError(fusedDx.array, dx.array), 1e-5,
                                         "\(shape) fixed \(fixedStatistics): dx")
                XCTAssertGreaterThan(GradientCheck.relativeError(dx.array, start.array), 1e-2, "\(shape): dx must change")
            }
        }
    }
}

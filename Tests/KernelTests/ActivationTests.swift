import XCTest
import Runtime
import Kernels

final class ActivationTests: XCTestCase {
    func testFastMatchesReference() {
        let shape = [5, 3, 17, 131]
        let x = OpsCheck.uniform(shape, seed: 11)
        let y = Tensor(shape: shape), yr = Tensor(shape: shape)
        Activation.reluForward(x, into: y)
        Activation.reluForwardReference(x, into: yr)
        XCTAssertEqual(y.array, yr.array)

        let dy = OpsCheck.uniform(shape, seed: 12)
        let dx = OpsCheck.uniform(shape, seed: 13), dxr = dx.copy()
        Activation.reluBackward(dy, y: y, dx: dx)
        Activation.reluBackwardReference(dy, y: yr, dx: dxr)
        XCTAssertEqual(dx.array, dxr.array)
    }

    func testInPlaceForward() {
        let x = Tensor(shape: [1, 1, 1, 5], values: [-2, -0.0, 0.5, 3, -1e-30])
        Activation.reluForward(x, into: x)
        XCTAssertEqual(x.array, [0, 0, 0.5, 3, 0])
    }

    func testBackwardAccumulatesAndMatchesFiniteDifferences() {
        // Values kept away from the kink at 0.
        let x = Tensor(shape: [2, 1, 2, 3], values: [-0.9, 0.4, 0.7, -0.3, 1.2, -2, 0.6, -0.5, 0.8, 0.2, -0.7, 1.5])
        let w = OpsCheck.weights(x.count, seed: 14)
        let y = Tensor(shape: x.shape)
        let numeric = GradientCheck.numericalGradient(of: x, epsilon: 1e-2) {
            Activation.reluForwardReference(x, into: y)
            return GradientCheck.weightedSum(y, w)
        }
        Activation.reluForwardReference(x, into: y)
        let dy = Tensor(shape: x.shape, values: w), dx = Tensor.zeros(x.shape)
        Activation.reluBackwardReference(dy, y: y, dx: dx)
        OpsCheck.assertClose(dx.array, numeric, 1e-3, "reference relu backward vs finite differences")
        let fast = Tensor.zeros(x.shape)
        Activation.reluBackward(dy, y: y, dx: fast)
        Activation.reluBackward(dy, y: y, dx: fast)
        XCTAssertEqual(fast.array, dx.array.map { 2 * $0 })
    }
}

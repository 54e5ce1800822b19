import XCTest
import Runtime
import Kernels

final class DropoutTests: XCTestCase {
    func testMaskIsTheSeededGeneratorsStream() {
        let x = OpsCheck.uniform([3, 5, 41, 43], seed: 180, low: 0.5, high: 1.5)   // nonzero everywhere
        let y = Tensor(shape: x.shape), yr = Tensor(shape: x.shape)
        Dropout.forward(x, p: 0.3, seed: 42, into: y)
        Dropout.forwardReference(x, p: 0.3, seed: 42, into: yr)
        // The same elements are dropped; kept ones agree up to x·(1/(1−p)) vs x/(1−p) rounding.
        XCTAssertEqual(y.array.map { $0 == 0 }, yr.array.map { $0 == 0 })
        OpsCheck.assertClose(y, yr, 1e-6, "dropout forward")
        let dy = OpsCheck.uniform(x.shape, seed: 181)
        let dx = OpsCheck.uniform(x.shape, seed: 182), dxr = dx.copy()
        Dropout.backward(dy, p: 0.3, seed: 42, dx: dx)
        Dropout.backwardReference(dy, p: 0.3, seed: 42, dx: dxr)
        OpsCheck.assertClose(dx, dxr, 1e-6, "dropout backward")
    }

    func testKeepFractionAndScale() {
        let x = Tensor.filled([200_000], 1)
        for p: Float in [0.1, 0.5, 0.8] {
            let y = Tensor(shape: x.shape)
            Dropout.forward(x, p: p, seed: 7, into: y)
            let values = y.array
            let kept = values.filter { $0 != 0 }
            XCTAssertEqual(Double(kept.count) / 200_000, Double(1 - p), accuracy: 0.005, "keep fraction for p \(p)")
            XCTAssertTrue(kept.allSatisfy { $0 == 1 / (1 - p) }, "kept values are scaled by 1/(1-p)")
        }
    }

    func testSameSeedSameMaskAndThreadSplitDoesNotMatter() {
        let x = Tensor.filled([4, 3, 50, 50], 1)
        let a = Tensor(shape: x.shape), b = Tensor(shape: x.shape), c = Tensor(shape: x.shape)
        Dropout.forward(x, p: 0.5, seed: 99, into: a)
        let threads = Parallel.threadCount
        Parallel.threadCount = 1
        Dropout.forward(x, p: 0.5, seed: 99, into: b)
        Parallel.threadCount = threads
        Dropout.forward(x, p: 0.5, seed: 100, into: c)
        XCTAssertEqual(a.array, b.array)
        let differ = zip(a.array, c.array).filter { $0 != $1 }.count
        XCTAssertGreaterThan(differ, x.count / 3, "another seed gives another mask")
        // Backward routes the gradient exactly where the forward kept the input.
        let dx = Tensor.zeros(x.shape)
        Dropout.backward(x, p: 0.5, seed: 99, dx: dx)
        XCTAssertEqual(dx.array, a.array)
        Dropout.backward(x, p: 0.5, seed: 99, dx: dx)
        XCTAssertEqual(dx.array, a.array.map { 2 * $0 })
    }

    func testZeroProbabilityCopies() {
        let x = OpsCheck.uniform([2, 3, 4, 5], seed: 190)
        let y = Tensor(shape: x.shape)
        Dropout.forward(x, p: 0, seed: 1, into: y)
        XCTAssertEqual(y.array, x.array)
        let dx = Tensor.zeros(x.shape)
        Dropout.backward(x, p: 0, seed: 1, dx: dx)
        Dropout.backward(x, p: 0, seed: 1, dx: dx)
        XCTAssertEqual(dx.array, x.array.map { 2 * $0 })
    }

    func testReferenceBackwardMatchesFiniteDifferences() {
        let x = OpsCheck.uniform([2, 1, 3, 3], seed: 195)
        let w = OpsCheck.weights(x.count, seed: 196)
        let y = Tensor(shape: x.shape)
        let numeric = GradientCheck.numericalGradient(of: x) {
            Dropout.forwardReference(x, p: 0.4, seed: 5, into: y)
            return GradientCheck.weightedSum(y, w)
        }
        let dx = Tensor.zeros(x.shape)
        Dropout.backwardReference(Tensor(shape: x.shape, values: w), p: 0.4, seed: 5, dx: dx)
        OpsCheck.assertClose(dx.array, numeric, 1e-3, "dropout backward")
    }
}

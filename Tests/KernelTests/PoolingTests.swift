import XCTest
import Runtime
import Kernels

final class PoolingTests: XCTestCase {
    /// The variants torchvision's DenseNet/ResNet and the d2l textbook use, plus odd ones.
    let variants: [PoolParameters] = [
        PoolParameters(kernel: 3, stride: 2, padding: 1), PoolParameters(kernel: 2), PoolParameters(kernel: 3, stride: 1, padding: 1),
        PoolParameters(kernel: 3, stride: 2), PoolParameters(kernel: 5, stride: 3, padding: 2),
        PoolParameters(kernel: 2, stride: 1, padding: 1, countIncludePad: false), PoolParameters(kernel: 3, stride: 2, padding: 1, countIncludePad: false),
    ]

    func testOutputSizesUseFloorMode() {
        XCTAssertEqual(PoolParameters(kernel: 3, stride: 2, padding: 1).outputSize(height: 112, width: 112).height, 56)
        XCTAssertEqual(PoolParameters(kernel: 2).outputSize(height: 32, width: 7).height, 16)
        XCTAssertEqual(PoolParameters(kernel: 2).outputSize(height: 32, width: 7).width, 3)
        XCTAssertEqual(PoolParameters(kernel: 3, stride: 2).outputSize(height: 8, width: 8).height, 3)
        XCTAssertEqual(Pooling.outputShape(input: [4, 2, 9, 11], PoolParameters(kernel: 3, stride: 2, padding: 1)), [4, 2, 5, 6])
        XCTAssertEqual(PoolParameters(kernel: 2).stride, 2)
    }

    func testFastMatchesReference() {
        for (i, p) in variants.enumerated() {
            for shape in [[3, 2, 9, 11], [2, 3, 8, 8], [1, 2, 7, 5], [1, 2, 3, 4]] {
                let what = "\(p) on \(shape)"
                let x = OpsCheck.uniform(shape, seed: 100 + UInt64(i))
                let outShape = Pooling.outputShape(input: shape, p)
                let y = Tensor(shape: outShape), yr = Tensor(shape: outShape)
                Pooling.maxForward(x, p, into: y)
                Pooling.maxForwardReference(x, p, into: yr)
                XCTAssertEqual(y.array, yr.array, "max forward \(what)")
                Pooling.avgForward(x, p, into: y)
                Pooling.avgForwardReference(x, p, into: yr)
                OpsCheck.assertClose(y, yr, 1e-6, "avg forward \(what)")

                let dy = OpsCheck.uniform(outShape, seed: 200 + UInt64(i))
                let dx = OpsCheck.uniform(shape, seed: 300), dxr = dx.copy()
                Pooling.maxBackward(dy, x: x, p, dx: dx)
                Pooling.maxBackwardReference(dy, x: x, p, dx: dxr)
                OpsCheck.assertClose(dx, dxr, 1e-6, "max backward \(what)")
                let da = OpsCheck.uniform(shape, seed: 301), dar = da.copy()
                Pooling.avgBackward(dy, p, dx: da)
                Pooling.avgBackwardReference(dy, p, dx: dar)
                OpsCheck.assertClose(da, dar, 1e-6, "avg backward \(what)")
            }
        }
    }

    func testLargeBatchUsesEveryPlane() {
        // Enough planes to split across threads; 2x2 and 3x3/2 take the unrolled paths.
        let x = OpsCheck.uniform([6, 8, 16, 16], seed: 110)
        for p in [PoolParameters(kernel: 2), PoolParameters(kernel: 3, stride: 2, padding: 1)] {
            let shape = Pooling.outputShape(input: x.shape, p)
            let y = Tensor(shape: shape), yr = Tensor(shape: shape)
            Pooling.maxForward(x, p, into: y)
            Pooling.maxForwardReference(x, p, into: yr)
            XCTAssertEqual(y.array, yr.array)
            Pooling.avgForward(x, p, into: y)
            Pooling.avgForwardReference(x, p, into: yr)
            OpsCheck.assertClose(y, yr, 1e-6, "avg \(p)")
        }
    }

    func testAverageDivisorFollowsCountIncludePad() {
        // One 2x2 plane [1 2; 3 4], kernel 2 stride 1 padding 1 → 3x3 windows.
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        let y = Tensor(shape: [1, 1, 3, 3])
        Pooling.avgForward(x, PoolParameters(kernel: 2, stride: 1, padding: 1), into: y)
        XCTAssertEqual(y.array, [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1])
        Pooling.avgForward(x, PoolParameters(kernel: 2, stride: 1, padding: 1, countIncludePad: false), into: y)
        XCTAssertEqual(y.array, [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4])
    }

    func testMaxTiesGoToTheFirstElementOfTheWindow() {
        let x = Tensor(shape: [1, 1, 2, 4], values: [5, 5, 1, 7, 5, 5, 7, 7])
        let dx = Tensor.zeros([1, 1, 2, 4])
        Pooling.maxBackward(Tensor(shape: [1, 1, 1, 2], values: [1, 10]), x: x, PoolParameters(kernel: 2), dx: dx)
        XCTAssertEqual(dx.array, [1, 0, 0, 10, 0, 0, 0, 0])
        // Padding is −inf: an all-negative border window still picks a real element.
        let negative = Tensor(shape: [1, 1, 2, 2], values: [-3, -1, -2, -4])
        let y = Tensor(shape: [1, 1, 1, 1])
        Pooling.maxForward(negative, PoolParameters(kernel: 3, stride: 2, padding: 1), into: y)
        XCTAssertEqual(y.array, [-1])
    }

    func testReferenceBackwardMatchesFiniteDifferences() {
        for p in [PoolParameters(kernel: 3, stride: 2, padding: 1), PoolParameters(kernel: 2, stride: 1, padding: 1, countIncludePad: false)] {
            // Distinct values spaced far more than the step, so no argmax changes under it.
            let count = 2 * 2 * 5 * 5
            let order = (0..<count).map { ($0 * 37) % count }
            let x = Tensor(shape: [2, 2, 5, 5], values: order.map { Float($0) * 0.1 - 5 })
            let shape = Pooling.outputShape(input: x.shape, p)
            let w = OpsCheck.weights(shape.reduce(1, *), seed: 120)
            let y = Tensor(shape: shape), dy = Tensor(shape: shape, values: w)
            for max in [true, false] {
                let numeric = GradientCheck.numericalGradient(of: x, epsilon: 1e-2) {
                    if max { Pooling.maxForwardReference(x, p, into: y) } else { Pooling.avgForwardReference(x, p, into: y) }
                    return GradientCheck.weightedSum(y, w)
                }
                let dx = Tensor.zeros(x.shape)
                if max { Pooling.maxBackwardReference(dy, x: x, p, dx: dx) } else { Pooling.avgBackwardReference(dy, p, dx: dx) }
                OpsCheck.assertClose(dx.array, numeric, 1e-3, "\(max ? "max" : "avg") \(p)")
            }
        }
    }

    func testGlobalAverage() {
        let x = OpsCheck.uniform([5, 3, 7, 7], seed: 130)
        let y = Tensor(shape: [5, 3]), yr = Tensor(shape: [5, 3])
        Pooling.globalAverageForward(x, into: y)
        Pooling.globalAverageForwardReference(x, into: yr)
        OpsCheck.assertClose(y, yr, 1e-6, "global average forward")
        let dy = OpsCheck.uniform([5, 3], seed: 131)
        let dx = Tensor.zeros(x.shape), dxr = Tensor.zeros(x.shape)
        Pooling.globalAverageBackward(dy, dx: dx)
        Pooling.globalAverageBackward(dy, dx: dx)
        Pooling.globalAverageBackwardReference(dy, dx: dxr)
        OpsCheck.assertClose(dx.array, dxr.array.map { 2 * $0 }, 1e-6, "global average backward twice")
        XCTAssertEqual(dx[4, 2, 6, 6], 2 * dy[4, 2] / 49, accuracy: 1e-7)
    }

    func testBackwardsAccumulate() {
        let x = OpsCheck.uniform([2, 3, 8, 8], seed: 140)
        for p in [PoolParameters(kernel: 3, stride: 2, padding: 1), PoolParameters(kernel: 2)] {
            let dy = OpsCheck.uniform(Pooling.outputShape(input: x.shape, p), seed: 141)
            let once = Tensor.zeros(x.shape), twice = Tensor.zeros(x.shape)
            Pooling.maxBackward(dy, x: x, p, dx: once)
            Pooling.maxBackward(dy, x: x, p, dx: twice)
            Pooling.maxBackward(dy, x: x, p, dx: twice)
            // Overlapping windows add into the same element in a different order: equal up to rounding.
            OpsCheck.assertClose(twice.array, once.array.map { 2 * $0 }, 1e-6, "max \(p)")
            once.zero(); twice.zero()
            Pooling.avgBackward(dy, p, dx: once)
            Pooling.avgBackward(dy, p, dx: twice)
            Pooling.avgBackward(dy, p, dx: twice)
            OpsCheck.assertClose(twice.array, once.array.map { 2 * $0 }, 1e-6, "avg \(p)")
        }
    }
}

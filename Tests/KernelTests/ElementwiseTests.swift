import XCTest
import Runtime
import Kernels

final class ElementwiseTests: XCTestCase {
    // 100_003 elements: several threads' ranges and a vector tail.
    let shape = [7, 3, 11, 433]

    func testFastMatchesReference() {
        let a = OpsCheck.uniform(shape, seed: 1), b = OpsCheck.uniform(shape, seed: 2)
        let y = Tensor(shape: shape), yr = Tensor(shape: shape)
        Elementwise.add(a, b, into: y)
        Elementwise.addReference(a, b, into: yr)
        XCTAssertEqual(y.array, yr.array)

        let acc = OpsCheck.uniform(shape, seed: 3), accr = acc.copy()
        Elementwise.accumulate(a, into: acc, scale: -0.5)
        Elementwise.accumulateReference(a, into: accr, scale: -0.5)
        XCTAssertEqual(acc.array, accr.array)

        let s = a.copy(), sr = a.copy()
        Elementwise.scale(s, by: 3)
        Elementwise.scaleReference(sr, by: 3)
        XCTAssertEqual(s.array, sr.array)

        XCTAssertEqual(Elementwise.sum(a), Elementwise.sumReference(a), accuracy: 1e-6 * Double(a.count))

        let c = Tensor(shape: shape)
        Elementwise.copy(b, into: c)
        XCTAssertEqual(c.array, b.array)
    }

    func testWorksOnChannelViews() {
        let big = OpsCheck.uniform([9, 2, 5, 5], seed: 4)
        let view = big.channels(3..<6), other = OpsCheck.uniform([3, 2, 5, 5], seed: 5)
        let expected = zip(view.array, other.array).map { $0 + 2 * $1 }
        Elementwise.accumulate(other, into: view, scale: 2)
        XCTAssertEqual(big.channels(3..<6).array, expected)
    }

    func testAccumulateTwiceDoubles() {
        let x = OpsCheck.uniform([3, 5, 7], seed: 6)
        let y = Tensor.zeros([3, 5, 7])
        Elementwise.accumulate(x, into: y)
        Elementwise.accumulate(x, into: y)
        XCTAssertEqual(y.array, x.array.map { 2 * $0 })
    }

    func testSumIsAccurateWithALargeOffset() {
        // 2^21 values of 1000 + small: a float running sum would be off by thousands.
        let n = 1 << 21
        let x = OpsCheck.uniform([n], seed: 7, low: 1000, high: 1001)
        var expected = 0.0
        for v in x.array { expected += Double(v) }
        XCTAssertEqual(Elementwise.sum(x), expected, accuracy: 1e-9 * expected)
    }
}

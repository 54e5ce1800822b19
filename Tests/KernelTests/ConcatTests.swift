import XCTest
import Runtime
import Kernels

final class ConcatTests: XCTestCase {
    func testForwardMatchesReference() {
        let parts = [OpsCheck.uniform([3, 4, 33, 31], seed: 21), OpsCheck.uniform([1, 4, 33, 31], seed: 22),
                     OpsCheck.uniform([12, 4, 33, 31], seed: 23)]
        let y = Tensor(shape: [16, 4, 33, 31]), yr = Tensor(shape: [16, 4, 33, 31])
        Concat.forward(parts, into: y)
        Concat.forwardReference(parts, into: yr)
        XCTAssertEqual(y.array, yr.array)
        XCTAssertEqual(y.channels(3..<4).array, parts[1].array)
    }

    func testForwardIntoASharedBufferLeavesInPlacePartsAlone() {
        // As in the shared-storage DenseNet: the first part already is the prefix of the buffer.
        let buffer = Tensor.zeros([5, 2, 3, 3])
        let prefix = buffer.channels(0..<2)
        prefix.assign(OpsCheck.uniform([2, 2, 3, 3], seed: 24))
        let before = prefix.array
        let new = OpsCheck.uniform([3, 2, 3, 3], seed: 25)
        Concat.forward([prefix, new], into: buffer)
        XCTAssertEqual(buffer.array, before + new.array)
    }

    func testBackwardAccumulatesSlicesAndSkipsNil() {
        let dy = OpsCheck.uniform([6, 3, 5, 7], seed: 26)
        let a = OpsCheck.uniform([2, 3, 5, 7], seed: 27), c = OpsCheck.uniform([3, 3, 5, 7], seed: 28)
        let ar = a.copy(), cr = c.copy()
        Concat.backward(dy, dxs: [a, nil, c])     // the single nil entry is 1 channel wide
        Concat.backwardReference(dy, dxs: [ar, nil, cr], channels: [2, 1, 3])
        XCTAssertEqual(a.array, ar.array)
        XCTAssertEqual(c.array, cr.array)

        let twice = Tensor.zeros([2, 3, 5, 7])
        Concat.backward(dy, dxs: [twice, nil, nil])   // trailing nils need no sizes
        Concat.backward(dy.channels(0..<2), dxs: [twice], channels: [2])
        XCTAssertEqual(twice.array, dy.channels(0..<2).array.map { 2 * $0 })
    }

    /// A dense layer's concatenation: many slices of a few channels, some without a gradient,
    /// large enough to split, so threads' ranges cut through slices: every dx equals the
    /// reference bit for bit on 1-3 threads, and the backward is one parallel region.
    func testBackwardOfManySlicesIsOneRegionAndExact() {
        let widths = [7, 3, 3, 3, 3, 3, 3, 3, 3, 3]
        let dy = OpsCheck.uniform([widths.reduce(0, +), 4, 31, 29], seed: 29)
        for threads in 1...3 {
            withThreadCount(threads) {
                let dxs: [Tensor?] = widths.enumerated().map { i, w in
                    i == 2 || i == 5 ? nil : OpsCheck.uniform([w, 4, 31, 29], seed: UInt64(30 + i))
                }
                let expected = dxs.map { $0?.copy() }
                Concat.backwardReference(dy, dxs: expected, channels: widths)
                Profile.start()
                Concat.backward(dy, dxs: dxs, channels: widths)
                let regions = Profile.stop().parallelRegions
                for (i, (dx, e)) in zip(dxs, expected).enumerated() {
                    XCTAssertEqual(dx?.array, e?.array, "slice \(i), \(threads) threads")
                }
                XCTAssertEqual(regions, threads > 1 ? 1 : 0, "\(threads) threads")
            }
        }
    }
}

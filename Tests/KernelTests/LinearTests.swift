import XCTest
import Runtime
import Kernels

final class LinearTests: XCTestCase {
    func testFastMatchesReference() {
        // The second shape is large enough for Gemm.multiply to split across threads.
        for (outputs, inputs, batch) in [(10, 37, 5), (64, 301, 70)] {
            let what = "\(outputs)x\(inputs), batch \(batch)"
            let x = OpsCheck.uniform([inputs, batch], seed: 150), w = OpsCheck.uniform([outputs, inputs], seed: 151)
            let b = OpsCheck.uniform([outputs], seed: 152)
            for bias in [b, nil] {
                let y = Tensor(shape: [outputs, batch]), yr = Tensor(shape: [outputs, batch])
                Linear.forward(x, weight: w, bias: bias, into: y)
                Linear.forwardReference(x, weight: w, bias: bias, into: yr)
                OpsCheck.assertClose(y, yr, 1e-5, "\(what) forward, bias \(bias != nil)")
            }
            let dy = OpsCheck.uniform([outputs, batch], seed: 153)
            let dx = OpsCheck.uniform([inputs, batch], seed: 154), dw = OpsCheck.uniform([outputs, inputs], seed: 155)
            let db = OpsCheck.uniform([outputs], seed: 156)
            let dxr = dx.copy(), dwr = dw.copy(), dbr = db.copy()
            Linear.backward(dy, x: x, weight: w, dx: dx, dWeight: dw, dBias: db)
            Linear.backwardReference(dy, x: x, weight: w, dx: dxr, dWeight: dwr, dBias: dbr)
            OpsCheck.assertClose(dx, dxr, 1e-5, "\(what) dx")
            OpsCheck.assertClose(dw, dwr, 1e-5, "\(what) dWeight")
            OpsCheck.assertClose(db, dbr, 1e-5, "\(what) dBias")
        }
    }

    func testReferenceBackwardMatchesFiniteDifferences() {
        let x = OpsCheck.uniform([4, 3], seed: 160), w = OpsCheck.uniform([5, 4], seed: 161), b = OpsCheck.uniform([5], seed: 162)
        let weights = OpsCheck.weights(15, seed: 163)
        let y = Tensor(shape: [5, 3])
        let loss: () -> Double = {
            Linear.forwardReference(x, weight: w, bias: b, into: y)
            return GradientCheck.weightedSum(y, weights)
        }
        let nx = GradientCheck.numericalGradient(of: x, loss), nw = GradientCheck.numericalGradient(of: w, loss)
        let nb = GradientCheck.numericalGradient(of: b, loss)
        let dx = Tensor.zeros([4, 3]), dw = Tensor.zeros([5, 4]), db = Tensor.zeros([5])
        Linear.backwardReference(Tensor(shape: [5, 3], values: weights), x: x, weight: w, dx: dx, dWeight: dw, dBias: db)
        OpsCheck.assertClose(dx.array, nx, 1e-3, "dx")
        OpsCheck.assertClose(dw.array, nw, 1e-3, "dWeight")
        OpsCheck.assertClose(db.array, nb, 1e-3, "dBias")
    }

    func testBackwardAccumulates() {
        let x = OpsCheck.uniform([6, 4], seed: 170), w = OpsCheck.uniform([3, 6], seed: 171), dy = OpsCheck.uniform([3, 4], seed: 172)
        let once = (Tensor.zeros([6, 4]), Tensor.zeros([3, 6]), Tensor.zeros([3]))
        let twice = (Tensor.zeros([6, 4]), Tensor.zeros([3, 6]), Tensor.zeros([3]))
        Linear.backward(dy, x: x, weight: w, dx: once.0, dWeight: once.1, dBias: once.2)
        Linear.backward(dy, x: x, weight: w, dx: twice.0, dWeight: twice.1, dBias: twice.2)
        Linear.backward(dy, x: x, weight: w, dx: twice.0, dWeight: twice.1, dBias: twice.2)
        XCTAssertEqual(twice.0.array, once.0.array.map { 2 * $0 })
        XCTAssertEqual(twice.1.array, once.1.array.map { 2 * $0 })
        XCTAssertEqual(twice.2.array, once.2.array.map { 2 * $0 })
        // nil gradients are skipped.
        Linear.backward(dy, x: x, weight: w, dx: nil, dWeight: nil, dBias: once.2)
        XCTAssertEqual(once.2.array, twice.2.array)
    }
}

import Kernels
import Runtime
import XCTest

/// The halves of batch norm that synchronised batch norm sums over ranks
/// (Sources/Kernels/BatchNorm+GlobalStatistics.swift), and dropout by global example index:
/// two slices of a batch, their sums added, give what the whole batch gives.
final class BatchNormGlobalStatisticsTests: XCTestCase {
    /// Examples `range` of a (C, N, ...) tensor, as a contiguous tensor.
    func examples(_ x: Tensor, _ range: Range<Int>) -> Tensor {
        let c = x.shape[0], n = x.shape[1], inner = x.count / (c * n)
        let a = x.array
        var out = [Float]()
        for ch in 0..<c { out += a[(ch * n + range.lowerBound) * inner ..< (ch * n + range.upperBound) * inner] }
        var shape = x.shape
        shape[1] = range.count
        return Tensor(shape: shape, values: out)
    }

    /// The slices joined back along the examples axis.
    func join(_ parts: [Tensor]) -> [Float] {
        let c = parts[0].shape[0]
        var out = [Float]()
        for ch in 0..<c {
            for p in parts { let row = p.count / c; out += p.array[ch * row ..< (ch + 1) * row] }
        }
        return out
    }

    func testTwoSlicesSummedGiveTheWholeBatchStatisticsAndGradients() {
        let (c, n) = (3, 5)
        let x = Tensor(shape: [c, n, 2, 3], values: Tensor.randomNormal([c, n, 2, 3], std: 3, seed: 1).array.map { $0 + 40 })
        let dy = Tensor.randomNormal([c, n, 2, 3], seed: 2)
        let gamma = OpsCheck.uniform([c], seed: 3, low: 0.5, high: 1.5)
        let beta = OpsCheck.uniform([c], seed: 4, low: -0.5, high: 0.5)
        let eps: Float = 1e-5
        // The whole batch, by the one-process kernels.
        let y = Tensor(shape: x.shape), mean = Tensor(shape: [c]), invStd = Tensor(shape: [c])
        BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: eps, relu: true, into: y, mean: mean, invStd: invStd)
        let dx = Tensor.zeros(x.shape), dGamma = Tensor.zeros([c]), dBeta = Tensor.zeros([c])
        BatchNorm.backward(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                           dx: dx, dGamma: dGamma, dBeta: dBeta)
        // Two "ranks" of 3 and 2 examples.
        let ranges = [0..<3, 3..<5]
        let xs = ranges.map { examples(x, $0) }, dys = ranges.map { examples(dy, $0) }
        var sums = [Double](repeating: 0, count: c)
        for part in xs {
            var s = [Double](repeating: 0, count: c)
            s.withUnsafeMutableBufferPointer { BatchNorm.channelSums(part, into: $0) }
            for i in 0..<c { sums[i] += s[i] }
        }
        let count = n * 6
        let globalMean = Tensor(shape: [c]), globalInvStd = Tensor(shape: [c])
        let mu = sums.withUnsafeBufferPointer { BatchNorm.means(sums: $0, count: count, into: globalMean) }
        var deviations = [Double](repeating: 0, count: c)
        for part in xs {
            var d = [Double](repeating: 0, count: c)
            d.withUnsafeMutableBufferPointer { BatchNorm.channelSquaredDeviations(part, center: globalMean, into: $0) }
            for i in 0..<c { deviations[i] += d[i] }
        }
        deviations.withUnsafeBufferPointer {
            BatchNorm.inverseStandardDeviations(deviations: $0, exactMeans: mu, count: count, eps: eps, mean: globalMean,
                                                into: globalInvStd)
        }
        OpsCheck.assertClose(globalMean.array, mean.array, 1e-6 * 40, "mean")
        OpsCheck.assertClose(globalInvStd.array, invStd.array, 1e-6, "invStd")
        let ys = xs.map { part -> Tensor in
            let out = Tensor(shape: part.shape)
            BatchNorm.forwardWithStatistics(part, gamma: gamma, beta: beta, mean: globalMean, invStd: globalInvStd,
                                            relu: true, into: out)
            return out
        }
        OpsCheck.assertClose(join(ys), y.array, 1e-5, "y")
        // Backward: each slice's sums, added, then each slice's input gradient with the totals.
        let sumDy = Tensor.zeros([c]), sumDyXhat = Tensor.zeros([c])
        for (part, g) in zip(xs, dys) {
            let a = Tensor(shape: [c]), b = Tensor(shape: [c])
            BatchNorm.backwardSums(g, x: part, gamma: gamma, beta: beta, mean: globalMean, invStd: globalInvStd,
                                   relu: true, sumDy: a, sumDyXhat: b)
            Elementwise.accumulate(a, into: sumDy)
            Elementwise.accumulate(b, into: sumDyXhat)
        }
        OpsCheck.assertClose(sumDy.array, dBeta.array, 1e-5, "Σ dy = dβ")
        OpsCheck.assertClose(sumDyXhat.array, dGamma.array, 1e-5, "Σ dy·xhat = dγ")
        let dxs = zip(xs, dys).map { part, g -> Tensor in
            let out = Tensor.zeros(part.shape)
            BatchNorm.backwardInput(g, x: part, gamma: gamma, beta: beta, mean: globalMean, invStd: globalInvStd, relu: true,
                                    sumDy: sumDy, sumDyXhat: sumDyXhat, count: count, dx: out)
            return out
        }
        OpsCheck.assertClose(join(dxs), dx.array, 1e-5, "dx")
    }

    func testDropoutByGlobalExampleIndexIsTheSameOnSlices() {
        let x = Tensor.randomNormal([2, 7, 3], seed: 8)
        let whole = Tensor(shape: x.shape)
        Dropout.forward(x, p: 0.4, seed: 1234, into: whole)
        let dWhole = Tensor.zeros(x.shape)
        Dropout.backward(x, p: 0.4, seed: 1234, dx: dWhole)
        var forward = [Tensor](), backward = [Tensor]()
        for range in [0..<4, 4..<7] {
            let part = examples(x, range)
            let y = Tensor(shape: part.shape), d = Tensor.zeros(part.shape)
            let where_ = ExampleRange(offset: range.lowerBound, globalCount: 7)
            Dropout.forward(part, p: 0.4, seed: 1234, examples: where_, into: y)
            Dropout.backward(part, p: 0.4, seed: 1234, examples: where_, dx: d)
            forward.append(y)
            backward.append(d)
        }
        XCTAssertEqual(join(forward), whole.array)
        XCTAssertEqual(join(backward), dWhole.array)
        XCTAssertTrue(whole.array.contains(0), "some elements are dropped")
        // The whole batch as its own range: the plain masks.
        let same = Tensor(shape: x.shape)
        Dropout.forward(x, p: 0.4, seed: 1234, examples: ExampleRange(offset: 0, globalCount: 7), into: same)
        XCTAssertEqual(same.array, whole.array)
    }
}

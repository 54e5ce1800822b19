import XCTest
import Runtime
import Kernels

final class BatchNormTests: XCTestCase {
    /// Parameters, statistics and gradients of one batch-norm test case.
    struct Case {
        let x: Tensor, gamma: Tensor, beta: Tensor
        var channels: Int { x.shape[0] }

        init(_ x: Tensor, seed: UInt64) {
            self.x = x
            gamma = OpsCheck.uniform([x.shape[0]], seed: seed, low: 0.5, high: 1.5)
            beta = OpsCheck.uniform([x.shape[0]], seed: seed + 1, low: -0.5, high: 0.5)
        }
    }

    func testTrainingForwardMatchesHandComputedStatistics() {
        // Channel 0: 1 2 3 4 → mean 2.5, biased var 1.25. Channel 1: -1 -1 3 3 → mean 1, var 4.
        let x = Tensor(shape: [2, 1, 1, 4], values: [1, 2, 3, 4, -1, -1, 3, 3])
        let gamma = Tensor(shape: [2], values: [2, 1]), beta = Tensor(shape: [2], values: [0.5, 0.5])
        let y = Tensor(shape: x.shape), mean = Tensor(shape: [2]), invStd = Tensor(shape: [2])
        BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 0, relu: false, into: y, mean: mean, invStd: invStd)
        OpsCheck.assertClose(mean.array, [2.5, 1], 1e-7, "mean")
        OpsCheck.assertClose(invStd.array, [0.894_427_191, 0.5], 1e-6, "invStd")
        // y = gamma·(x − mean)·invStd + beta.
        let expected: [Float] = [-2.183_281_573, -0.394_427_191, 1.394_427_191, 3.183_281_573, -0.5, -0.5, 1.5, 1.5]
        OpsCheck.assertClose(y.array, expected, 1e-6, "y")
        BatchNorm.forwardTraining(x, gamma: gamma, beta: beta, eps: 0, relu: true, into: y, mean: mean, invStd: invStd)
        OpsCheck.assertClose(y.array, expected.map { max($0, 0) }, 1e-6, "relu(y)")
    }

    func testRunningStatisticsFollowPyTorchsUpdate() {
        let x = OpsCheck.uniform([3, 4, 5, 3], seed: 31, low: -2, high: 3)
        let c = Case(x, seed: 32)
        let y = Tensor(shape: x.shape), mean = Tensor(shape: [3]), invStd = Tensor(shape: [3])
        let eps: Float = 1e-5
        BatchNorm.forwardTraining(x, gamma: c.gamma, beta: c.beta, eps: eps, relu: true, into: y, mean: mean, invStd: invStd)
        let start: ([Float], [Float]) = ([0.1, -0.2, 0.3], [1, 2, 0.5])
        let runningMean = Tensor(shape: [3], values: start.0), runningVar = Tensor(shape: [3], values: start.1)
        BatchNorm.updateRunningStatistics(runningMean: runningMean, runningVar: runningVar, mean: mean, invStd: invStd,
                                          eps: eps, momentum: 0.1, count: 60)
        // PyTorch: running = 0.9·running + 0.1·batch, with the unbiased variance Σ(x−μ)²/(n−1).
        let v = x.array
        var expectedMean = [Float](), expectedVar = [Float]()
        for ch in 0..<3 {
            let row = v[(ch * 60)..<(ch * 60 + 60)].map(Double.init)
            let mu = row.reduce(0, +) / 60
            let unbiased = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / 59
            expectedMean.append(Float(0.9 * Double(start.0[ch]) + 0.1 * mu))
            expectedVar.append(Float(0.9 * Double(start.1[ch]) + 0.1 * unbiased))
        }
        OpsCheck.assertClose(runningMean.array, expectedMean, 1e-6, "running mean")
        OpsCheck.assertClose(runningVar.array, expectedVar, 1e-5, "running var")

        let refMean = Tensor(shape: [3], values: start.0), refVar = Tensor(shape: [3], values: start.1)
        BatchNorm.updateRunningStatisticsReference(runningMean: refMean, runningVar: refVar, mean: mean, invStd: invStd,
                                                   eps: eps, momentum: 0.1, count: 60)
        OpsCheck.assertClose(refVar.array, expectedVar, 1e-5, "reference running var")

        // Evaluation with the running statistics.
        let yi = Tensor(shape: x.shape), yir = Tensor(shape: x.shape)
        BatchNorm.forwardInference(x, gamma: c.gamma, beta: c.beta, runningMean: runningMean, runningVar: runningVar,
                                   eps: eps, relu: true, into: yi)
        BatchNorm.forwardInferenceReference(x, gamma: c.gamma, beta: c.beta, runningMean: runningMean,
                                            runningVar: runningVar, eps: eps, relu: true, into: yir)
        OpsCheck.assertClose(yi, yir, 1e-5, "inference y")
    }

    func testLongRowsWithALargeMeanKeepAccurateStatistics() {
        // 70 001 values of 1000 ± 1 per channel: a one-pass float sum of squares would lose the variance.
        let x = OpsCheck.uniform([2, 1, 1, 70_001], seed: 33, low: 999, high: 1001)
        let c = Case(x, seed: 34)
        let y = Tensor(shape: x.shape), mean = Tensor(shape: [2]), invStd = Tensor(shape: [2])
        BatchNorm.forwardTraining(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: false, into: y, mean: mean, invStd: invStd)
        let v = x.array.map(Double.init)
        for ch in 0..<2 {
            let row = v[(ch * 70_001)..<((ch + 1) * 70_001)]
            let mu = row.reduce(0, +) / 70_001
            let variance = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / 70_001
            XCTAssertEqual(Double(mean[ch]), mu, accuracy: 1e-4)
            XCTAssertEqual(Double(invStd[ch]), 1 / (variance + 1e-5).squareRoot(), accuracy: 1e-5 / variance.squareRoot())
        }
    }

    func testFastMatchesReference() {
        let buffer = OpsCheck.uniform([9, 2, 33, 33], seed: 35, low: -1, high: 2)
        for (i, x) in [OpsCheck.uniform([5, 3, 7, 9], seed: 36), buffer.channels(2..<7), OpsCheck.uniform([4, 11], seed: 37)].enumerated() {
            for relu in [false, true] {
                let what = "case \(i) \(x.shape) relu \(relu)"
                let c = Case(x, seed: 38 + UInt64(i))
                let ch = c.channels
                let y = Tensor(shape: x.shape), mean = Tensor(shape: [ch]), invStd = Tensor(shape: [ch])
                let yr = Tensor(shape: x.shape), meanr = Tensor(shape: [ch]), invStdr = Tensor(shape: [ch])
                BatchNorm.forwardTraining(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: y, mean: mean, invStd: invStd)
                BatchNorm.forwardTrainingReference(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: yr,
                                                   mean: meanr, invStd: invStdr)
                OpsCheck.assertClose(y, yr, 1e-5, "\(what): y")
                OpsCheck.assertClose(mean, meanr, 1e-6, "\(what): mean")
                OpsCheck.assertClose(invStd, invStdr, 1e-5, "\(what): invStd")

                let ys = Tensor(shape: x.shape), ysr = Tensor(shape: x.shape)
                BatchNorm.forwardWithStatistics(x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu, into: ys)
                BatchNorm.forwardWithStatisticsReference(x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd,
                                                         relu: relu, into: ysr)
                XCTAssertEqual(ys.array, y.array, "\(what): recompute must reproduce the training forward exactly")
                OpsCheck.assertClose(ys, ysr, 1e-5, "\(what): forwardWithStatistics")

                let dy = OpsCheck.uniform(x.shape, seed: 50 + UInt64(i))
                for fixed in [false, true] {
                    let dx = OpsCheck.uniform(x.shape, seed: 60), dg = OpsCheck.uniform([ch], seed: 61), db = OpsCheck.uniform([ch], seed: 62)
                    let dxr = dx.copy(), dgr = dg.copy(), dbr = db.copy()
                    if fixed {
                        BatchNorm.backwardWithFixedStatistics(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd,
                                                              relu: relu, dx: dx, dGamma: dg, dBeta: db)
                        BatchNorm.backwardWithFixedStatisticsReference(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean,
                                                                       invStd: invStd, relu: relu, dx: dxr, dGamma: dgr, dBeta: dbr)
                    } else {
                        BatchNorm.backward(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu,
                                           dx: dx, dGamma: dg, dBeta: db)
                        BatchNorm.backwardReference(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd,
                                                    relu: relu, dx: dxr, dGamma: dgr, dBeta: dbr)
                    }
                    OpsCheck.assertClose(dx, dxr, 1e-5, "\(what) fixed \(fixed): dx")
                    OpsCheck.assertClose(dg, dgr, 1e-5, "\(what) fixed \(fixed): dGamma")
                    OpsCheck.assertClose(db, dbr, 1e-5, "\(what) fixed \(fixed): dBeta")
                }
            }
        }
    }

    /// Batch norm of pieces along channels (a dense layer's inputs, `forwardTraining(concatenating:)`
    /// and its backward) computes what it computes on their concatenation, bit for bit, and the
    /// reference to rounding; each piece's gradient is written, added to, or (nil) skipped as asked.
    func testPiecesAlongChannelsEqualTheirConcatenation() {
        let buffer = OpsCheck.uniform([9, 2, 5, 7], seed: 100, low: -1, high: 2)
        let pieces = [OpsCheck.uniform([3, 2, 5, 7], seed: 101), buffer.channels(4..<6),
                      OpsCheck.uniform([1, 2, 5, 7], seed: 102, low: 0, high: 3), buffer.channels(0..<4)]
        let whole = Tensor(shape: [10, 2, 5, 7])
        Concat.forwardReference(pieces, into: whole)
        let c = Case(whole, seed: 103)
        let ranges = [0..<3, 3..<5, 5..<6, 6..<10]
        for relu in [false, true] {
            let what = "relu \(relu)"
            let (y, mean, invStd) = (Tensor(shape: whole.shape), Tensor(shape: [10]), Tensor(shape: [10]))
            let (yc, meanc, invStdc) = (Tensor(shape: whole.shape), Tensor(shape: [10]), Tensor(shape: [10]))
            BatchNorm.forwardTraining(concatenating: pieces, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu,
                                      into: y, mean: mean, invStd: invStd)
            BatchNorm.forwardTraining(whole, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: yc, mean: meanc,
                                      invStd: invStdc)
            XCTAssertEqual(y.array, yc.array, "\(what): y")
            XCTAssertEqual(mean.array + invStd.array, meanc.array + invStdc.array, "\(what): statistics")
            let yr = Tensor(shape: whole.shape), meanr = Tensor(shape: [10]), invStdr = Tensor(shape: [10])
            BatchNorm.forwardTrainingReference(whole, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: yr,
                                               mean: meanr, invStd: invStdr)
            OpsCheck.assertClose(y, yr, 1e-5, "\(what): y against the reference")

            // Piece 0 written, 1 added to, 2 not wanted, 3 added to.
            let dy = OpsCheck.uniform(whole.shape, seed: 104)
            let start = OpsCheck.uniform(whole.shape, seed: 105)
            let dxs: [Tensor?] = [Tensor.filled([3, 2, 5, 7], .nan), start.channels(3..<5).copy(), nil,
                                  start.channels(6..<10).copy()]
            let dGamma = Tensor.zeros([10]), dBeta = Tensor.zeros([10])
            BatchNorm.backward(dy, concatenating: pieces, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd,
                               relu: relu, dxs: dxs, overwriting: [true, false, false, false], dGamma: dGamma, dBeta: dBeta)
            let dx = Tensor.zeros(whole.shape), dGammac = Tensor.zeros([10]), dBetac = Tensor.zeros([10])
            BatchNorm.backward(dy, x: whole, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu,
                               dx: dx, dGamma: dGammac, dBeta: dBetac)
            XCTAssertEqual(dGamma.array + dBeta.array, dGammac.array + dBetac.array, "\(what): dGamma, dBeta")
            XCTAssertEqual(dxs[0]!.array, dx.channels(ranges[0]).array, "\(what): written piece")
            for i in [1, 3] {
                let expected = zip(start.channels(ranges[i]).array, dx.channels(ranges[i]).array).map { $0 + $1 }
                XCTAssertEqual(dxs[i]!.array, expected, "\(what): piece \(i) added to")
            }
            let dxr = Tensor.zeros(whole.shape)
            BatchNorm.backwardReference(dy, x: whole, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu,
                                        dx: dxr, dGamma: Tensor.zeros([10]), dBeta: Tensor.zeros([10]))
            OpsCheck.assertClose(dxs[0]!, dxr.channels(ranges[0]), 1e-5, "\(what): written piece against the reference")
        }
    }

    func testReferenceBackwardMatchesFiniteDifferences() {
        for relu in [false, true] {
            for fixed in [false, true] {
                let what = "relu \(relu) fixed \(fixed)"
                let x = OpsCheck.uniform([2, 2, 3, 3], seed: 70)
                let c = Case(x, seed: 71)
                let y = Tensor(shape: x.shape), mean = Tensor(shape: [2]), invStd = Tensor(shape: [2])
                BatchNorm.forwardTrainingReference(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: y,
                                                   mean: mean, invStd: invStd)
                let fixedMean = mean.copy(), fixedInvStd = invStd.copy()
                let w = OpsCheck.weights(x.count, seed: 72)
                let loss: () -> Double = {
                    if fixed {
                        BatchNorm.forwardWithStatisticsReference(x, gamma: c.gamma, beta: c.beta, mean: fixedMean,
                                                                 invStd: fixedInvStd, relu: relu, into: y)
                    } else {
                        BatchNorm.forwardTrainingReference(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: relu, into: y,
                                                           mean: mean, invStd: invStd)
                    }
                    return GradientCheck.weightedSum(y, w)
                }
                let epsilon: Float = 1e-3
                let numericX = GradientCheck.numericalGradient(of: x, epsilon: epsilon, loss)
                let numericGamma = GradientCheck.numericalGradient(of: c.gamma, epsilon: epsilon, loss)
                let numericBeta = GradientCheck.numericalGradient(of: c.beta, epsilon: epsilon, loss)

                let dy = Tensor(shape: x.shape, values: w)
                let dx = Tensor.zeros(x.shape), dg = Tensor.zeros([2]), db = Tensor.zeros([2])
                if fixed {
                    BatchNorm.backwardWithFixedStatisticsReference(dy, x: x, gamma: c.gamma, beta: c.beta, mean: fixedMean,
                                                                   invStd: fixedInvStd, relu: relu, dx: dx, dGamma: dg, dBeta: db)
                } else {
                    BatchNorm.backwardReference(dy, x: x, gamma: c.gamma, beta: c.beta, mean: fixedMean, invStd: fixedInvStd,
                                                relu: relu, dx: dx, dGamma: dg, dBeta: db)
                }
                OpsCheck.assertClose(dx.array, numericX, 2e-3, "\(what): dx vs finite differences")
                OpsCheck.assertClose(dg.array, numericGamma, 2e-3, "\(what): dGamma vs finite differences")
                OpsCheck.assertClose(db.array, numericBeta, 2e-3, "\(what): dBeta vs finite differences")
            }
        }
    }

    func testBackwardAccumulates() {
        let x = OpsCheck.uniform([3, 2, 5, 5], seed: 80), dy = OpsCheck.uniform([3, 2, 5, 5], seed: 81)
        let c = Case(x, seed: 82)
        let y = Tensor(shape: x.shape), mean = Tensor(shape: [3]), invStd = Tensor(shape: [3])
        BatchNorm.forwardTraining(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd)
        let once = (Tensor.zeros(x.shape), Tensor.zeros([3]), Tensor.zeros([3]))
        let twice = (Tensor.zeros(x.shape), Tensor.zeros([3]), Tensor.zeros([3]))
        BatchNorm.backward(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: true,
                           dx: once.0, dGamma: once.1, dBeta: once.2)
        for _ in 0..<2 {
            BatchNorm.backward(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: true,
                               dx: twice.0, dGamma: twice.1, dBeta: twice.2)
        }
        XCTAssertEqual(twice.0.array, once.0.array.map { 2 * $0 })
        XCTAssertEqual(twice.1.array, once.1.array.map { 2 * $0 })
        XCTAssertEqual(twice.2.array, once.2.array.map { 2 * $0 })
        // Nil gradients are skipped: dx alone equals the dx of the full call.
        let alone = Tensor.zeros(x.shape)
        BatchNorm.backward(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: true,
                           dx: alone, dGamma: nil, dBeta: nil)
        XCTAssertEqual(alone.array, once.0.array)
    }

    func testTilesOfAWiderMatrixEqualTheWholeTensor() {
        // 6 channels × 97 columns, held at column 5 of (6 × 120) buffers; tiles of 20, 41 and 36 columns.
        let channels = 6, columns = 97, ld = 120, start = 5
        let x = OpsCheck.uniform([channels, columns], seed: 90, low: -1, high: 2)
        let dy = OpsCheck.uniform([channels, columns], seed: 91)
        let c = Case(x, seed: 92)
        let mean = Tensor(shape: [channels]), invStd = Tensor(shape: [channels]), y = Tensor(shape: x.shape)
        BatchNorm.forwardTraining(x, gamma: c.gamma, beta: c.beta, eps: 1e-5, relu: true, into: y, mean: mean, invStd: invStd)
        func wide(_ t: Tensor, _ width: Int) -> Tensor {
            let w = OpsCheck.uniform([channels, width], seed: 93)
            w.narrow(1, start..<(start + columns)).assign(t)
            return w
        }
        let wx = wide(x, ld), wdy = wide(dy, ld)
        let dx0 = OpsCheck.uniform([channels, columns], seed: 94)
        let wdx = wide(dx0, 130), wy = wide(Tensor.zeros(x.shape), 110)
        let sumDy = Tensor.zeros([channels]), sumDyXhat = Tensor.zeros([channels])
        let tiles = [0..<20, 20..<61, 61..<97]
        for relu in [false, true] {
            sumDy.zero(); sumDyXhat.zero()
            wdx.narrow(1, start..<(start + columns)).assign(dx0)
            for t in tiles {
                BatchNorm.accumulateBackwardSums(dy: wdy.pointer + start + t.lowerBound, x: wx.pointer + start + t.lowerBound,
                    channels: channels, columns: t.count, ld: ld, gamma: c.gamma.pointer, beta: c.beta.pointer,
                    mean: mean.pointer, invStd: invStd.pointer, relu: relu, sumDy: sumDy.pointer, sumDyXhat: sumDyXhat.pointer)
            }
            for t in tiles {
                BatchNorm.accumulateInputGradient(dy: wdy.pointer + start + t.lowerBound, x: wx.pointer + start + t.lowerBound,
                    channels: channels, columns: t.count, ld: ld, gamma: c.gamma.pointer, beta: c.beta.pointer,
                    mean: mean.pointer, invStd: invStd.pointer, relu: relu, sumDy: sumDy.pointer, sumDyXhat: sumDyXhat.pointer,
                    count: columns, dx: wdx.pointer + start + t.lowerBound, dxLd: 130)
                BatchNorm.applyStatistics(x: wx.pointer + start + t.lowerBound, channels: channels, columns: t.count, ld: ld,
                    gamma: c.gamma.pointer, beta: c.beta.pointer, mean: mean.pointer, invStd: invStd.pointer, relu: relu,
                    y: wy.pointer + start + t.lowerBound, yLd: 110)
            }
            let dx = dx0.copy(), dGamma = Tensor.zeros([channels]), dBeta = Tensor.zeros([channels])
            BatchNorm.backward(dy, x: x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu,
                               dx: dx, dGamma: dGamma, dBeta: dBeta)
            let whole = Tensor(shape: x.shape)
            BatchNorm.forwardWithStatistics(x, gamma: c.gamma, beta: c.beta, mean: mean, invStd: invStd, relu: relu, into: whole)
            OpsCheck.assertClose(sumDy, dBeta, 1e-6, "relu \(relu): tiled Σg vs dBeta")
            OpsCheck.assertClose(sumDyXhat, dGamma, 1e-6, "relu \(relu): tiled Σg·xhat vs dGamma")
            OpsCheck.assertClose(wdx.narrow(1, start..<(start + columns)).array, dx.array, 1e-6, "relu \(relu): tiled dx")
            XCTAssertEqual(wy.narrow(1, start..<(start + columns)).array, whole.array, "relu \(relu): tiled y")
            // Columns outside the tiles are untouched.
            XCTAssertEqual(wdx.narrow(1, 0..<start).array, OpsCheck.uniform([channels, 130], seed: 93).narrow(1, 0..<start).array)
        }
    }
}

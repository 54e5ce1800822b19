import Foundation
import Kernels
import Runtime

/// `bench-kernels --compare-fused`: a dense layer's BN1 → ReLU → 1x1 conv, forward, weight
/// gradient and input gradient, unfused (BN+ReLU or its gradient written out, then the product or
/// batch norm's backward: the `shared`/`minimal` path) against fused (tile by tile,
/// Conv2d+NormalizedInput.swift and Conv2d+NormalizedInputGradient.swift, the
/// `fused-normalization` path), at DenseNet-BC-100's and DenseNet-121's largest first-block
/// shapes, alternated in one run (interleavedMedians) so that both see the same load. The fused
/// input gradient leaves the statistics part, timed on its own, for once per channel per block.
struct FusedComparison {
    var repeats: Int

    func run() {
        // (channels C, outputs M, batch, side): the last layer of each model's first block, and
        // the last layers of DenseNet-121's other blocks.
        for (c, m, n, side) in [(204, 48, 64, 32), (232, 128, 8, 56), (480, 128, 8, 28), (992, 128, 8, 14), (992, 128, 8, 7)] {
            let x = Tensor.randomNormal([c, n, side, side], seed: 1)
            let gamma = Tensor.randomUniform([c], low: 0.5, high: 1.5, seed: 2), beta = Tensor.randomUniform([c], seed: 3)
            let mean = Tensor(shape: [c]), invStd = Tensor(shape: [c])
            BatchNorm.trainingStatistics(x, eps: 1e-5, mean: mean, invStd: invStd)
            let weight = Tensor.randomNormal([m, c, 1, 1], std: 0.1, seed: 4), dWeight = Tensor.zeros([m, c, 1, 1])
            let y = Tensor(shape: [m, n, side, side]), dy = Tensor.randomNormal([m, n, side, side], seed: 5)
            let normalized = Tensor(shape: x.shape), dx = Tensor.zeros(x.shape)
            let sums = (Tensor.zeros([c]), Tensor.zeros([c])), terms = (Tensor.zeros([c]), Tensor.zeros([c]))
            let workspace = Tensor(shape: [Conv2d.normalizedInputGradientWorkspace(x)])
            let dGamma = Tensor.zeros([c]), dBeta = Tensor.zeros([c])
            let positions = n * side * side
            let p = ConvParameters(kernel: 1)
            let variants: [(String, () -> Void)] = [
                ("forward, unfused", {
                    BatchNorm.forwardWithStatistics(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                                                    into: normalized)
                    Conv2d.forward(normalized, weight: weight, bias: nil, p, into: y)
                }),
                ("forward, fused (OpenBLAS)", {
                    Conv2d.smallProductKernel = .off
                    Conv2d.pointwiseForwardNormalized(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                      weight: weight, bias: nil, into: y)
                    Conv2d.smallProductKernel = .measured
                }),
                ("forward, fused (own product)", {
                    Conv2d.smallProductKernel = .always
                    Conv2d.pointwiseForwardNormalized(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                      weight: weight, bias: nil, into: y)
                    Conv2d.smallProductKernel = .measured
                }),
                ("weight gradient, unfused", {
                    BatchNorm.forwardWithStatistics(x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                                                    into: normalized)
                    Conv2d.backward(dy, x: normalized, weight: weight, p, dx: nil, dWeight: dWeight, dBias: nil)
                }),
                ("weight gradient, fused", {
                    Conv2d.pointwiseWeightGradientNormalized(dy, x: x, gamma: gamma, beta: beta, mean: mean,
                                                             invStd: invStd, dWeight: dWeight, dBias: nil)
                }),
                ("input gradient, unfused", {
                    Gemm.multiply(transA: true, m: c, n: positions, k: m, a: weight.pointer, lda: c, b: dy.pointer,
                                  ldb: positions, beta: 0, c: normalized.pointer, ldc: positions)
                    BatchNorm.backward(normalized, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: true,
                                       dx: dx, dGamma: dGamma, dBeta: dBeta)
                }),
                ("input gradient, fused", {
                    Conv2d.pointwiseInputGradientNormalized(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean,
                                                            invStd: invStd, dx: dx, sumDy: sums.0, sumDyXhat: sums.1,
                                                            workspace: workspace)
                    BatchNorm.addStatisticsGradientTerms(gamma: gamma, sumDy: sums.0, sumDyXhat: sums.1, count: positions,
                                                         a: terms.0, b: terms.1)
                }),
                ("weight + input gradient, two", {
                    Conv2d.pointwiseWeightGradientNormalized(dy, x: x, gamma: gamma, beta: beta, mean: mean,
                                                             invStd: invStd, dWeight: dWeight, dBias: nil)
                    Conv2d.pointwiseInputGradientNormalized(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean,
                                                            invStd: invStd, dx: dx, sumDy: sums.0, sumDyXhat: sums.1,
                                                            workspace: workspace)
                }),
                ("weight + input gradient, one", {
                    Conv2d.pointwiseBackwardNormalized(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean,
                                                       invStd: invStd, dWeight: dWeight, dBias: nil, dx: dx,
                                                       sumDy: sums.0, sumDyXhat: sums.1)
                }),
                ("  its statistics part", {
                    BatchNorm.accumulateStatisticsGradient(x: x, mean: mean, invStd: invStd, a: terms.0, b: terms.1, dx: dx)
                }),
            ]
            let seconds = interleavedMedians(repeats: repeats, variants.map(\.1))
            let flops = 2.0 * Double(m * c * n * side * side)
            print("\(c)->\(m) 1x1 at \(n)x\(side)x\(side), \(Parallel.threadCount) threads:")
            for (i, (name, _)) in variants.enumerated() {
                // Each fused variant against the unfused one of its pass (forward: 0, weight gradient: 3,
                // input gradient: 5); the statistics part has no product and no ratio.
                let unfused = name.hasPrefix("forward") ? seconds[0] : name.hasPrefix("weight + input") ? seconds[7]
                    : name.hasPrefix("weight") ? seconds[3] : seconds[5]
                let part = name.contains("statistics")
                print(String(format: "  %@ %8.2f ms  %@%@", name.padding(toLength: 30, withPad: " ", startingAt: 0),
                             seconds[i] * 1e3, part ? "" : String(format: "%6.1f GFLOP/s", flops / seconds[i] * 1e-9),
                             name.contains("unfused") || name.hasSuffix("two") || part ? ""
                                : String(format: "  (x%.2f vs %@)", unfused / seconds[i], name.hasSuffix("one") ? "two" : "unfused")))
            }
        }
    }
}

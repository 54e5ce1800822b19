import Kernels
import Runtime

/// The backward of a BN → ReLU → 1x1 convolution whose normalised input is never stored, with
/// the gradient through the batch statistics left for later (Conv2d+NormalizedInputGradient.swift
/// derives the split): for the bottleneck layers of a dense block, whose norm1s share the
/// statistics of their common channels, so their statistics parts add up per channel and are
/// applied once (`BatchNorm.accumulateStatisticsGradient`, DenseBlock+SharedStorage.swift).
extension BatchNormState {
    /// The per-channel terms of the statistics part that several batch norms add into, one value
    /// per channel each (`BatchNorm.addStatisticsGradientTerms`).
    public typealias StatisticsGradientTerms = (a: Tensor, b: Tensor)

    /// dx += the gradient of relu(bn(x)) → conv(weight) with the statistics held fixed, dGamma and
    /// dBeta += this rank's Σ g·xhat and Σ g; in training, the statistics part added to `terms`
    /// (over the ranks' global batch when batch norm is synchronised) instead of to dx. Evaluation
    /// mode holds the statistics fixed: nothing is added to `terms`, which may be nil then.
    /// With `dWeight`, the convolution's weight gradient (and `dBias`'s) is taken in the same pass
    /// over the tiles (`Conv2d.pointwiseBackwardNormalized`). `workspace`, when given, is a dead
    /// tensor, used where it holds what the kernel keeps (else the kernel allocates it).
    // dy (M, N, H, W); x, dx (C, N, H, W); weight, dWeight (M, C, 1, 1); dBias (M);
    // gamma, beta, mean, invStd, dGamma, dBeta, terms (C).
    public func pointwiseBackward(_ dy: Tensor, x: Tensor, weight: Tensor, gamma: Tensor, beta: Tensor,
                                       mean: Tensor, invStd: Tensor, training: Bool, dx: Tensor, dGamma: Tensor?,
                                       dBeta: Tensor?, dWeight: Tensor? = nil, dBias: Tensor? = nil,
                                       terms: StatisticsGradientTerms?, workspace: Tensor?) {
        precondition(!training || terms != nil, "BatchNormState.pointwiseBackward: training needs terms to add to")
        precondition(dBias == nil || dWeight != nil, "BatchNormState.pointwiseBackward: dBias comes with dWeight")
        let c = x.shape.first ?? 0
        let sumDy = Tensor.zeros([c], category: .scratch), sumDyXhat = Tensor.zeros([c], category: .scratch)
        // The workspace is used where it holds what the kernel keeps.
        let needed = dWeight == nil ? Conv2d.normalizedInputGradientWorkspace(x) : Conv2d.normalizedBackwardSumsFloats(x)
        let space = workspace.flatMap { $0.isContiguous && $0.count >= needed ? $0 : nil }
        if let dWeight {
            Conv2d.pointwiseBackwardNormalized(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean,
                                               invStd: invStd, dWeight: dWeight, dBias: dBias, dx: dx, sumDy: sumDy,
                                               sumDyXhat: sumDyXhat, workspace: space)
        } else {
            Conv2d.pointwiseInputGradientNormalized(dy, x: x, weight: weight, gamma: gamma, beta: beta, mean: mean,
                                                    invStd: invStd, dx: dx, sumDy: sumDy, sumDyXhat: sumDyXhat,
                                                    workspace: space)
        }
        // This rank's part of dγ and dβ, before the sums become global.
        if let dGamma { Elementwise.accumulate(sumDyXhat, into: dGamma) }
        if let dBeta { Elementwise.accumulate(sumDy, into: dBeta) }
        guard training, let terms else { return }
        var count = x.count / max(c, 1)
        if let reducer = BatchNormState.statisticsReducer, !DryRun.isActive {
            count = sumOverRanks(sumDy: sumDy, sumDyXhat: sumDyXhat, count: count, reducer: reducer)
        }
        BatchNorm.addStatisticsGradientTerms(gamma: gamma, sumDy: sumDy, sumDyXhat: sumDyXhat, count: count,
                                             a: terms.a, b: terms.b)
    }
}

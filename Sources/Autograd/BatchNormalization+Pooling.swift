import Kernels
import Runtime

extension Functional {
    /// avgpool 2x2/2 of relu(batchNorm(x)) as one operation that never stores relu(batchNorm(x))
    /// (Kernels/BatchNorm+AveragePool.swift): a transition's first half under
    /// `fused-normalization`. Batch norm's one rule (`BatchNormState.statistics`: batch or
    /// running statistics, one running update per forward, none in a recompute, synchronised
    /// over ranks when a reducer is installed). Keeps its input and the statistics.
    // x (C, N, H, W) → (C, N, H/2, W/2); weight, bias (C).
    public static func batchNormReLUAveragePool(_ x: Variable, weight: Variable, bias: Variable, state: BatchNormState,
                                                training: Bool) -> Variable {
        let channels = x.shape[0]
        precondition(x.shape.count == 4 && weight.shape == [channels] && bias.shape == [channels],
                     "batchNormReLUAveragePool: input \(x.shape) needs (C, N, H, W) and weight/bias [\(channels)], got \(weight.shape)/\(bias.shape)")
        let mean = Tensor(shape: [channels]), invStd = Tensor(shape: [channels])
        let (xv, gamma, beta) = (x.value, weight.value, bias.value)
        state.statistics(xv, training: training, mean: mean, invStd: invStd)
        let y = Tensor(shape: Pooling.outputShape(input: x.shape, PoolParameters(kernel: 2, stride: 2)))
        BatchNorm.normalizedAveragePoolForward(xv, gamma: gamma, beta: beta, mean: mean, invStd: invStd, into: y)
        let label = "batchNorm+relu+avgPool2d" + (training ? "" : "(eval)")
        return Autograd.record(label, y, inputs: [x, weight, bias]) { gy, g in
            state.averagePoolBackward(gy, x: xv, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                      training: training, dx: g[0], dGamma: g[1], dBeta: g[2])
        }
    }
}

extension BatchNormState {
    /// The backward of `Functional.batchNormReLUAveragePool` in its mode: dγ and dβ get this
    /// process's sums; dx goes through the batch statistics in training (their sums global when
    /// synchronised), with them held constant in evaluation.
    // dy (C, N, H/2, W/2); x, dx (C, N, H, W); gamma, beta, mean, invStd, dGamma, dBeta (C).
    func averagePoolBackward(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                             training: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?) {
        let c = channels
        let sumDy = Tensor(shape: [c], category: .scratch), sumDyXhat = Tensor(shape: [c], category: .scratch)
        BatchNorm.normalizedAveragePoolBackwardSums(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                    sumDy: sumDy, sumDyXhat: sumDyXhat)
        if let dGamma { Elementwise.accumulate(sumDyXhat, into: dGamma) }
        if let dBeta { Elementwise.accumulate(sumDy, into: dBeta) }
        guard let dx else { return }
        var count = x.count / c
        if !training {
            sumDy.zero()
            sumDyXhat.zero()
        } else if let reducer = BatchNormState.statisticsReducer, !DryRun.isActive {
            count = sumOverRanks(sumDy: sumDy, sumDyXhat: sumDyXhat, count: count, reducer: reducer)
        }
        BatchNorm.normalizedAveragePoolInputGradient(dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                                                     sumDy: sumDy, sumDyXhat: sumDyXhat, count: count, dx: dx)
    }
}

import Kernels
import Runtime

// Differentiable operations over the kernels. Each forward allocates its output, calls the
// kernel, and records a backward that captures only what that backward needs (tinygrad style):
// convolution and linear keep their input and weight, ReLU its output, batch norm its input and
// the batch statistics (its ReLU mask is recomputed), pooling its input or nothing, dropout a seed.
// Activations are channel-major (C, N, H, W).

extension Variable {
    /// Back-propagates from this (scalar) variable.
    public func backward() { Autograd.backward(self) }
}

public enum Functional {
    // MARK: Convolution and linear

    /// (Cin, N, H, W) → (Cout, N, Ho, Wo)
    public static func conv2d(_ x: Variable, weight: Variable, bias: Variable?, _ p: ConvParameters) -> Variable {
        let y = Tensor(shape: Conv2d.outputShape(input: x.shape, weight: weight.shape, p))
        Conv2d.forward(x.value, weight: weight.value, bias: bias?.value, p, into: y)
        let (xv, wv) = (x.value, weight.value)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return Autograd.recordWriting("conv2d", y, inputs: inputs, writable: 1) { gy, g, fresh in
            Conv2d.backward(gy, x: xv, weight: wv, p, dx: g[0], dWeight: g[1], dBias: g.count > 2 ? g[2] : nil,
                            overwriteDx: fresh[0])
        }
    }

    /// (in, N) → (out, N)
    public static func linear(_ x: Variable, weight: Variable, bias: Variable?) -> Variable {
        precondition(x.shape.count == 2 && x.shape[0] == weight.shape[1],
                     "linear: input \(x.shape) (features, N) does not match weight \(weight.shape)")
        let y = Tensor(shape: [weight.shape[0], x.shape[1]])
        Linear.forward(x.value, weight: weight.value, bias: bias?.value, into: y)
        let (xv, wv) = (x.value, weight.value)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return Autograd.record("linear", y, inputs: inputs) { gy, g in
            Linear.backward(gy, x: xv, weight: wv, dx: g[0], dWeight: g[1], dBias: g.count > 2 ? g[2] : nil)
        }
    }

    // MARK: Normalisation

    /// Batch norm over channel-major (C, ...) input, optionally fused with the ReLU after it,
    /// by the rule of `BatchNormState` (batch statistics and one running-statistics update in
    /// training, never during a recompute; running statistics in evaluation). Keeps its input
    /// and the statistics for backward (the ReLU mask is recomputed from them).
    public static func batchNorm(_ x: Variable, weight: Variable, bias: Variable, state: BatchNormState,
                                 training: Bool, relu: Bool) -> Variable {
        let channels = x.shape[0]
        precondition(weight.shape == [channels] && bias.shape == [channels],
                     "batchNorm: input \(x.shape) needs weight/bias [\(channels)], got \(weight.shape)/\(bias.shape)")
        let y = Tensor(shape: x.shape)
        let mean = Tensor(shape: [channels]), invStd = Tensor(shape: [channels])
        let (xv, gamma, beta) = (x.value, weight.value, bias.value)
        state.normalize(xv, gamma: gamma, beta: beta, training: training, relu: relu, into: y, mean: mean, invStd: invStd)
        let label = (relu ? "batchNorm+relu" : "batchNorm") + (training ? "" : "(eval)")
        return Autograd.recordWriting(label, y, inputs: [x, weight, bias], writable: 1) { gy, g, fresh in
            state.normalizeBackward(gy, x: xv, gamma: gamma, beta: beta, mean: mean, invStd: invStd, training: training,
                                    relu: relu, dx: g[0], dGamma: g[1], dBeta: g[2], overwriteDx: fresh[0])
        }
    }

    /// `batchNorm(concat(xs))` in training mode without the concatenated tensor: batch norm reads
    /// each channel where its piece lies and its backward writes each piece's gradient in place,
    /// so neither the concatenation nor its backward's split is a pass over memory. The same
    /// numbers bit for bit (the same per-channel code); keeps the pieces, which a dense layer's
    /// caller holds anyway, and the statistics. Evaluation mode, synchronised statistics and a
    /// piece taken twice (whose two gradient rows would be added to at once by two threads)
    /// concatenate first.
    // xs[i] (C_i, N, H, W) → (ΣC_i, N, H, W)
    public static func concatBatchNorm(_ xs: [Variable], weight: Variable, bias: Variable, state: BatchNormState,
                                       training: Bool, relu: Bool) -> Variable {
        let nodes = xs.compactMap { $0.node.map(ObjectIdentifier.init) }
        guard xs.count > 1, training, BatchNormState.statisticsReducer == nil || DryRun.isActive,
              Set(nodes).count == nodes.count else {
            return batchNorm(xs.count == 1 ? xs[0] : concat(xs), weight: weight, bias: bias, state: state,
                             training: training, relu: relu)
        }
        var shape = xs[0].shape
        shape[0] = xs.reduce(0) { $0 + $1.shape[0] }
        let channels = shape[0]
        precondition(weight.shape == [channels] && bias.shape == [channels],
                     "concatBatchNorm: inputs of \(channels) channels need weight/bias [\(channels)], got \(weight.shape)/\(bias.shape)")
        let y = Tensor(shape: shape)
        let mean = Tensor(shape: [channels]), invStd = Tensor(shape: [channels])
        let (values, gamma, beta) = (xs.map(\.value), weight.value, bias.value)
        state.normalizeTraining(concatenating: values, gamma: gamma, beta: beta, relu: relu, into: y, mean: mean, invStd: invStd)
        let n = xs.count
        return Autograd.recordWriting(relu ? "concat+batchNorm+relu" : "concat+batchNorm", y, inputs: xs + [weight, bias],
                                      writable: n) { gy, g, fresh in
            BatchNorm.backward(gy, concatenating: values, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                               dxs: Array(g[0..<n]), overwriting: Array(fresh[0..<n]), dGamma: g[n], dBeta: g[n + 1])
        }
    }

    // MARK: Activations, pooling, dropout

    public static func relu(_ x: Variable) -> Variable {
        let y = Tensor(shape: x.shape)
        Activation.reluForward(x.value, into: y)
        return Autograd.record("relu", y, inputs: [x]) { gy, g in
            if let dx = g[0] { Activation.reluBackward(gy, y: y, dx: dx) }
        }
    }

    public static func maxPool2d(_ x: Variable, _ p: PoolParameters) -> Variable {
        let y = Tensor(shape: Pooling.outputShape(input: x.shape, p))
        Pooling.maxForward(x.value, p, into: y)
        let xv = x.value
        return Autograd.record("maxPool2d", y, inputs: [x]) { gy, g in
            if let dx = g[0] { Pooling.maxBackward(gy, x: xv, p, dx: dx) }
        }
    }

    public static func avgPool2d(_ x: Variable, _ p: PoolParameters) -> Variable {
        let y = Tensor(shape: Pooling.outputShape(input: x.shape, p))
        Pooling.avgForward(x.value, p, into: y)
        return Autograd.record("avgPool2d", y, inputs: [x]) { gy, g in
            if let dx = g[0] { Pooling.avgBackward(gy, p, dx: dx) }
        }
    }

    /// (C, N, H, W) → (C, N)
    public static func globalAvgPool(_ x: Variable) -> Variable {
        precondition(x.shape.count == 4, "globalAvgPool: expects (C, N, H, W), got \(x.shape)")
        let y = Tensor(shape: [x.shape[0], x.shape[1]])
        Pooling.globalAverageForward(x.value, into: y)
        return Autograd.record("globalAvgPool", y, inputs: [x]) { gy, g in
            if let dx = g[0] { Pooling.globalAverageBackward(gy, dx: dx) }
        }
    }

    /// Inverted dropout. The mask is a function of a seed drawn from `Autograd`'s stream, so a
    /// checkpoint recompute draws the same mask and nothing is stored for backward.
    public static func dropout(_ x: Variable, p: Float, training: Bool) -> Variable {
        guard training, p > 0 else { return x }
        let seed = Autograd.nextDropoutSeed(), examples = Autograd.dropoutExamples
        let y = Tensor(shape: x.shape)
        Dropout.forward(x.value, p: p, seed: seed, examples: examples, into: y)
        return Autograd.record("dropout", y, inputs: [x]) { gy, g in
            if let dx = g[0] { Dropout.backward(gy, p: p, seed: seed, examples: examples, dx: dx) }
        }
    }

    // MARK: Structure

    /// Concatenation along channels (dim 0): a new tensor, as `torch.cat` in the naive DenseNet.
    public static func concat(_ xs: [Variable]) -> Variable {
        precondition(!xs.isEmpty, "concat: no inputs")
        var shape = xs[0].shape
        shape[0] = xs.reduce(0) { $0 + $1.shape[0] }
        let y = Tensor(shape: shape)
        Concat.forward(xs.map { $0.value }, into: y)
        return Autograd.recordWriting("concat", y, inputs: xs, writable: xs.count) { gy, g, fresh in
            Concat.backward(gy, dxs: g, overwriting: fresh)
        }
    }

    public static func add(_ a: Variable, _ b: Variable) -> Variable {
        let y = Tensor(shape: a.shape)
        Elementwise.add(a.value, b.value, into: y)
        return Autograd.record("add", y, inputs: [a, b]) { gy, g in
            if let da = g[0] { Elementwise.accumulate(gy, into: da) }
            if let db = g[1] { Elementwise.accumulate(gy, into: db) }
        }
    }

    // MARK: Losses

    /// Mean softmax cross-entropy of logits (classes, N) against labels; a [1] tensor.
    public static func crossEntropy(_ logits: Variable, labels: [Int32]) -> Variable {
        let loss = CrossEntropy.forward(logits.value, labels: labels)
        let y = Tensor(shape: [1], values: [loss])
        let lv = logits.value
        return Autograd.record("crossEntropy", y, inputs: [logits]) { gy, g in
            if let dl = g[0] { CrossEntropy.backward(lv, labels: labels, scale: gy.scalar, dLogits: dl) }
        }
    }

    /// Mean squared error of predictions (1, N) against targets; a [1] tensor.
    public static func meanSquaredError(_ prediction: Variable, targets: [Float]) -> Variable {
        precondition(prediction.value.count == targets.count,
                     "meanSquaredError: \(prediction.shape) predictions for \(targets.count) targets")
        let pv = prediction.value
        let p = pv.array
        var sum = 0.0
        for (a, t) in zip(p, targets) { sum += Double(a - t) * Double(a - t) }
        let y = Tensor(shape: [1], values: [Float(sum / Double(max(targets.count, 1)))])
        return Autograd.record("meanSquaredError", y, inputs: [prediction]) { gy, g in
            guard let d = g[0], !d.isVirtual else { return }
            let scale = 2 * gy.scalar / Float(max(targets.count, 1))
            let dp = d.pointer
            for i in 0..<targets.count { dp[i] += scale * (p[i] - targets[i]) }
        }
    }
}

// Parameter and FLOP counts: the formulas per layer kind, and the totals over the leaves.

extension Architecture.Layer.Kind {
    /// Weights and biases: conv `out·in·k²` (+ out), BN `2c` (γ, β), linear `out·in` (+ out).
    public var trainableParameters: Int {
        switch self {
        case .convolution(let c):
            return c.outChannels * c.inChannels * c.kernel * c.kernel + (c.bias ? c.outChannels : 0)
        case .batchNorm(let channels):
            return 2 * channels
        case .linear(let l):
            return l.outFeatures * l.inFeatures + (l.bias ? l.outFeatures : 0)
        default:
            return 0
        }
    }

    /// BN running mean and running variance: `2c`. PyTorch also stores `num_batches_tracked`
    /// (one integer per BN layer); it is left out here, as Keras does, so that densenet121
    /// reports 83,648 like Keras' DenseNet121.
    public var nonTrainableParameters: Int {
        if case .batchNorm(let channels) = self { return 2 * channels }
        return 0
    }

    /// 2 × multiply-accumulates per example for an output of `output` (C, H, W):
    /// conv `2·out·H'·W'·in·k²`, linear `2·in·out`; every other kind 0.
    public func forwardFLOPs(output: FeatureShape) -> Int {
        switch self {
        case .convolution(let c):
            return 2 * c.outChannels * output.height * output.width * c.inChannels * c.kernel * c.kernel
        case .linear(let l):
            return 2 * l.inFeatures * l.outFeatures
        default:
            return 0
        }
    }
}

extension Architecture {
    /// Sum of weights and biases over all leaves.
    public var trainableParameters: Int { leaves.reduce(0) { $0 + $1.trainableParameters } }

    /// Sum of BN running statistics (2 per BN channel) over all leaves.
    public var nonTrainableParameters: Int { leaves.reduce(0) { $0 + $1.nonTrainableParameters } }

    /// Trainable + non-trainable (Keras' "Total params").
    public var totalParameters: Int { trainableParameters + nonTrainableParameters }

    /// Number of BN layers: add this to `nonTrainableParameters` to count PyTorch's
    /// `num_batches_tracked` entries of a state dict as well.
    public var batchNormLayerCount: Int {
        leaves.reduce(0) { n, layer in
            if case .batchNorm = layer.kind { return n + 1 }
            return n
        }
    }

    /// Forward FLOPs per example (2 × MACs of convs and linears).
    public var forwardFLOPs: Int { leaves.reduce(0) { $0 + $1.forwardFLOPs } }

    /// Sum of every leaf's output elements per example: what torchsummary multiplies by the
    /// batch and 2 × 4 bytes for its "forward/backward pass size". Dense layers count only
    /// their k new channels here; a naive implementation also copies each concatenation.
    public var leafOutputElements: Int { leaves.reduce(0) { $0 + $1.outputShape.elementCount } }

    /// Elements per example of the concatenated inputs a naive DenseNet materialises: one copy
    /// of `c0 + i·k` channels for every dense layer `i` of every block (torchvision's
    /// `torch.cat` copies even the first layer's one-tensor list). Grows with the square of
    /// the block length.
    public var naiveConcatenationElements: Int {
        denseBlocks.reduce(0) { total, block in
            total + block.layerInputWidths.reduce(0) { $0 + $1 * block.height * block.width }
        }
    }

    /// Elements per example of the shared block buffers (Pleiss et al. 2017): one buffer of
    /// `c0 + n·k` channels per block, grows linearly with depth.
    public var sharedBlockBufferElements: Int {
        denseBlocks.reduce(0) { $0 + $1.outputChannels * $1.height * $1.width }
    }
}

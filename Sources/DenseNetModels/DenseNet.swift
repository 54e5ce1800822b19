import Autograd
import Kernels
import NeuralLayers
import Runtime

/// A module that only groups named children (`features` in torchvision's DenseNet).
public final class Container: Module {}

/// Between two dense blocks: BN → ReLU → 1x1 conv (c → ⌊θ·c⌋) → 2x2/2 pooling
/// (torchvision's `_Transition`; average pooling, or max for the textbook's ablation).
///
/// With average pooling the pooling runs before the convolution: both are linear and the
/// convolution is 1x1, so they commute (bias included), and the product then has a quarter of
/// the columns and keeps a quarter-size input for its backward. Same function up to rounding
/// (TransitionTests checks it against torchvision's order); `Architecture` records this order.
public final class Transition: Module {
    public let norm: BatchNormLayer
    public let conv: ConvLayer
    public let pooling: DenseNetConfiguration.TransitionPooling

    public init(inputWidth: Int, outputWidth: Int, convBias: Bool, pooling: DenseNetConfiguration.TransitionPooling,
                initialization: ConvLayer.WeightInit) {
        norm = BatchNormLayer(inputWidth)
        conv = ConvLayer(inputWidth, outputWidth, kernel: 1, bias: convBias, initialization: initialization)
        self.pooling = pooling
        super.init()
        register("norm", norm)
        register("conv", conv)
    }

    /// With `fuseNormalization` and average pooling, BN → ReLU → pooling is one operation that
    /// never stores the full-size BN/ReLU output (`Functional.batchNormReLUAveragePool`).
    public func callAsFunction(_ x: Variable, fuseNormalization: Bool = false) -> Variable {
        if fuseNormalization && pooling == .average {
            norm.enterForward()
            return conv(Functional.batchNormReLUAveragePool(x, weight: norm.weight.variable, bias: norm.bias.variable,
                                                            state: norm.state, training: norm.isTraining))
        }
        let normalized = norm(x, relu: true)
        let window = PoolParameters(kernel: 2, stride: 2)
        switch pooling {
        case .average: return conv(Functional.avgPool2d(normalized, window))
        case .max: return Functional.maxPool2d(conv(normalized), window)
        }
    }
}

/// A DenseNet (Huang et al. 2017, arXiv 1608.06993) built from its `Architecture` (the one
/// description of its widths and shapes), with torchvision's module names, training under any
/// `MemoryPolicy` (Pleiss et al. 2017, arXiv 1707.06990); every policy computes the same function.
///
/// Input (C, N, H, W) channel-major, output logits (classes, N).
public final class DenseNet: Module {
    public let configuration: DenseNetConfiguration
    public let architecture: Architecture
    public let features = Container()
    public let classifier: LinearLayer
    public let blocks: [DenseBlock]
    public let transitions: [Transition]
    let conv0: ConvLayer
    let norm0: BatchNormLayer?
    let finalNorm: BatchNormLayer

    /// The memory policy asked for; the blocks, stem and transitions follow the part of it a
    /// DenseNet honours (`MemoryPolicy.honoured(by: .denseNet)`).
    public var policy: MemoryPolicy {
        didSet { for block in blocks { block.policy = policy.honoured(by: .denseNet) } }
    }

    public init(_ configuration: DenseNetConfiguration, policy: MemoryPolicy = .naive) throws(ConfigurationError) {
        // Validates, and refuses inputs too small for the downsampling chain.
        let architecture = try Architecture(.denseNet(configuration))
        self.configuration = configuration
        self.architecture = architecture
        self.policy = policy
        let c = configuration
        let initialization: ConvLayer.WeightInit = c.convBias ? .pytorchDefault : .kaimingNormal
        guard case .convolution(let stem)? = architecture.layer(named: "features.conv0")?.kind else {
            preconditionFailure("DenseNet: the architecture of \(c.name) has no features.conv0")
        }
        conv0 = ConvLayer(stem.inChannels, stem.outChannels, kernel: stem.kernel, stride: stem.stride,
                          padding: stem.padding, bias: stem.bias, initialization: initialization)
        norm0 = architecture.layer(named: "features.norm0") == nil ? nil : BatchNormLayer(stem.outChannels)
        features.register("conv0", conv0)
        if let norm0 { features.register("norm0", norm0) }
        // Built in the order of the network, which is the order their weights draw seeds.
        var blocks = [DenseBlock](), transitions = [Transition]()
        let honoured = policy.honoured(by: .denseNet)
        for spec in architecture.denseBlocks {
            let block = DenseBlock(spec, dropRate: Float(c.dropRate), convBias: c.convBias, policy: honoured,
                                   initialization: initialization)
            features.register("denseblock\(spec.index)", block)
            blocks.append(block)
            if let t = architecture.transitions.first(where: { $0.index == spec.index }) {
                let transition = Transition(inputWidth: t.inputChannels, outputWidth: t.outputChannels,
                                            convBias: c.convBias, pooling: c.transitionPooling,
                                            initialization: initialization)
                features.register("transition\(t.index)", transition)
                transitions.append(transition)
            }
        }
        finalNorm = BatchNormLayer(architecture.finalChannels)
        features.register("norm5", finalNorm)   // torchvision names it norm5 whatever the block count
        classifier = LinearLayer(architecture.finalChannels, c.classCount, zeroBias: !c.convBias)
        self.blocks = blocks
        self.transitions = transitions
        super.init()
        register("features", features)
        register("classifier", classifier)
    }

    /// The stem: conv0 (→ norm0 → ReLU → 3x3/2 max pool for the ImageNet stem).
    func stem(_ x: Variable) -> Variable {
        let y = conv0(x)
        guard let norm0 else { return y }
        return Functional.maxPool2d(norm0(y, relu: true), PoolParameters(kernel: 3, stride: 2, padding: 1))
    }

    /// Fine-tuning with frozen features (Sources/Training/FineTuning.swift, `--freeze features`):
    /// the features and the pooling run without recording a graph (nothing kept for backward,
    /// no backward through them), so a step costs the forward pass and the classifier's update.
    /// Their parameters then get no gradient. Set it only with the features in evaluation mode.
    public var featuresWithoutGradient = false

    /// (C, N, H, W) → logits (classes, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        let expected = configuration.inputShape
        precondition(x.shape.count == 4 && x.shape[0] == expected.channels,
                     "DenseNet: input \(x.shape) must be (\(expected.channels), N, H, W), channel-major")
        if featuresWithoutGradient {
            return classifier(Autograd.withoutGradient { pooledFeatures(x) })
        }
        return classifier(pooledFeatures(x))
    }

    /// Stem, blocks and transitions, final norm and ReLU, global average pooling: (C, N).
    func pooledFeatures(_ x: Variable) -> Variable {
        // Recomputed, the stem and transitions keep only their inputs (which are kept anyway:
        // the image, and each block's output).
        let honoured = policy.honoured(by: .denseNet)
        let recompute = honoured.recomputeStemAndTransitions, fuse = honoured.fuseNormalization
        var h = recompute ? Autograd.checkpoint("stem", x) { [self] in stem($0) } : stem(x)
        for (i, block) in blocks.enumerated() {
            h = block(h)
            if i < transitions.count {
                let t = transitions[i]
                h = recompute ? Autograd.checkpoint("transition\(i + 1)", h) { t($0, fuseNormalization: fuse) }
                              : t(h, fuseNormalization: fuse)
            }
        }
        let normalized = finalNorm(h, relu: true)
        DryRun.current?.enter("forward avgpool")   // torchvision's functional pooling (Architecture: "avgpool")
        return Functional.globalAvgPool(normalized)
    }
}

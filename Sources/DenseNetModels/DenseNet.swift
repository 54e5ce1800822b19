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
/// the columns and keeps a quarter-size input for its backward. Same function up to rounding;
/// the FLOPs counted for the model (`Architecture`) stay torchvision's.
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

    public func callAsFunction(_ x: Variable) -> Variable {
        let normalized = norm(x, relu: true)
        let window = PoolParameters(kernel: 2, stride: 2)
        switch pooling {
        case .average: return conv(Functional.avgPool2d(normalized, window))
        case .max: return Functional.maxPool2d(conv(normalized), window)
        }
    }
}

/// A DenseNet (Huang et al. 2017, arXiv 1608.06993) built from a `DenseNetConfiguration`, with
/// torchvision's module names, training under one of four memory strategies (Pleiss et al. 2017,
/// arXiv 1707.06990) that all compute the same function.
///
/// Input (C, N, H, W) channel-major, output logits (classes, N).
public final class DenseNet: Module {
    public let configuration: DenseNetConfiguration
    public let features = Container()
    public let classifier: LinearLayer
    public let blocks: [DenseBlock]
    public let transitions: [Transition]
    let conv0: ConvLayer
    let norm0: BatchNormLayer?
    let finalNorm: BatchNormLayer

    /// The memory strategy of every dense block (and, for `minimal`, of the stem and transitions).
    public var strategy: MemoryStrategy {
        didSet { for block in blocks { block.strategy = strategy } }
    }

    public init(_ configuration: DenseNetConfiguration, strategy: MemoryStrategy = .naive) throws(ConfigurationError) {
        try configuration.validate()
        _ = try Architecture(.denseNet(configuration))   // refuses inputs too small for the downsampling chain
        self.configuration = configuration
        self.strategy = strategy
        let c = configuration
        let initialization: ConvLayer.WeightInit = c.convBias ? .pytorchDefault : .kaimingNormal
        let k = c.growthRate
        switch c.stem {
        case .imagenet:
            conv0 = ConvLayer(c.inputShape.channels, c.initialFeatures, kernel: 7, stride: 2, padding: 3,
                              bias: c.convBias, initialization: initialization)
            norm0 = BatchNormLayer(c.initialFeatures)
        case .cifar:
            conv0 = ConvLayer(c.inputShape.channels, c.initialFeatures, kernel: 3, padding: 1,
                              bias: c.convBias, initialization: initialization)
            norm0 = nil
        }
        features.register("conv0", conv0)
        if let norm0 { features.register("norm0", norm0) }
        var width = c.initialFeatures
        var blocks = [DenseBlock](), transitions = [Transition]()
        for (i, layerCount) in c.blockConfig.enumerated() {
            let block = DenseBlock(layerCount: layerCount, inputWidth: width, growthRate: k,
                                   bottleneckFactor: c.bottleneckFactor, dropRate: Float(c.dropRate),
                                   convBias: c.convBias, strategy: strategy, initialization: initialization)
            features.register("denseblock\(i + 1)", block)
            blocks.append(block)
            width = block.outputWidth
            if i + 1 < c.blockConfig.count {
                let transition = Transition(inputWidth: width, outputWidth: c.compressed(width), convBias: c.convBias,
                                            pooling: c.transitionPooling, initialization: initialization)
                features.register("transition\(i + 1)", transition)
                transitions.append(transition)
                width = c.compressed(width)
            }
        }
        finalNorm = BatchNormLayer(width)
        features.register("norm5", finalNorm)   // torchvision names it norm5 whatever the block count
        classifier = LinearLayer(width, c.classCount, zeroBias: !c.convBias)
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

    /// (C, N, H, W) → logits (classes, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        let expected = configuration.inputShape
        precondition(x.shape.count == 4 && x.shape[0] == expected.channels,
                     "DenseNet: input \(x.shape) must be (\(expected.channels), N, H, W), channel-major")
        // Under `minimal`, the stem and transitions keep only their inputs (which are kept
        // anyway: the image, and each block's feature buffer) and are recomputed in backward.
        let recompute = strategy == .minimal
        var h = recompute ? Autograd.checkpoint("stem", x) { [self] in stem($0) } : stem(x)
        for (i, block) in blocks.enumerated() {
            h = block(h)
            if i < transitions.count {
                let t = transitions[i]
                h = recompute ? Autograd.checkpoint("transition\(i + 1)", h) { t($0) } : t(h)
            }
        }
        let pooled = Functional.globalAvgPool(finalNorm(h, relu: true))
        return classifier(pooled)
    }
}

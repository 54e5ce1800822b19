import Autograd
import Kernels
import NeuralLayers
import Runtime

/// One residual block of the d2l ResNet (torchvision's `BasicBlock` names, d2l's `Residual`):
/// `conv1` 3x3 (stride s) → `bn1` → ReLU → `conv2` 3x3 → `bn2`, added to the identity or, where
/// the width or resolution changes, to `downsample.0`, a 1x1 stride-s projection conv with bias
/// and NO batch norm (d2l's `conv3`; torchvision would follow it with a BN); then ReLU.
public final class BasicBlock: Module {
    public let inputWidth: Int
    public let outputWidth: Int
    public let stride: Int
    public let conv1: ConvLayer
    public let bn1: BatchNormLayer
    public let conv2: ConvLayer
    public let bn2: BatchNormLayer
    /// The 1x1 projection of the identity path, nil where input and output shapes agree.
    public let projection: ConvLayer?

    public init(inputWidth: Int, outputWidth: Int, stride: Int, projection: Bool, convBias: Bool,
                initialization: ConvLayer.WeightInit = .pytorchDefault) {
        precondition(projection || (stride == 1 && inputWidth == outputWidth),
                     "BasicBlock: \(inputWidth)→\(outputWidth) channels at stride \(stride) needs a projection")
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
        self.stride = stride
        conv1 = ConvLayer(inputWidth, outputWidth, kernel: 3, stride: stride, padding: 1, bias: convBias,
                          initialization: initialization)
        bn1 = BatchNormLayer(outputWidth)
        conv2 = ConvLayer(outputWidth, outputWidth, kernel: 3, padding: 1, bias: convBias,
                          initialization: initialization)
        bn2 = BatchNormLayer(outputWidth)
        self.projection = projection
            ? ConvLayer(inputWidth, outputWidth, kernel: 1, stride: stride, bias: convBias, initialization: initialization)
            : nil
        super.init()
        register("conv1", conv1)
        register("bn1", bn1)
        register("conv2", conv2)
        register("bn2", bn2)
        if let projection = self.projection {
            // torchvision's `downsample` is an nn.Sequential: its conv is `downsample.0`.
            let downsample = register("downsample", Container())
            downsample.register("0", projection)
        }
    }

    /// (Cin, N, H, W) → (Cout, N, ⌈H/s⌉, ⌈W/s⌉)
    public func callAsFunction(_ x: Variable) -> Variable {
        precondition(x.shape.count == 4 && x.shape[0] == inputWidth,
                     "BasicBlock: input \(x.shape) must be (\(inputWidth), N, H, W)")
        let y = bn2(conv2(bn1(conv1(x), relu: true)))
        let shortcut = projection.map { $0(x) } ?? x
        return Functional.relu(Functional.add(y, shortcut))
    }
}

/// The d2l textbook ResNet (He et al. 2016; d2l "Residual Networks"), the baseline the DenseNet
/// chapter compares with, built from a `ResNetConfiguration` with torchvision's names: `conv1`,
/// `bn1`, `layer{s}.{b}.{conv1,bn1,conv2,bn2,downsample.0}`, `fc`. Every convolution has a bias
/// (d2l's `LazyConv2d`) and is initialised with PyTorch's default (uniform, fan-in), as in the
/// textbook; `resnet18` has 11,178,378 trainable parameters.
///
/// Input (C, N, H, W) channel-major, output logits (classes, N).
///
/// Memory policy (`MemoryPolicy.honoured(by: .resNet)`; all compute the same function, same
/// gradients and running statistics). A ResNet has no concatenation to share, so `shared`
/// trains it as `naive`:
/// - nothing: every intermediate autograd would keep is kept (per block: conv1 input, BN1
///   input, ReLU output, conv2 input, BN2 input, the sum's ReLU output, the projection input).
/// - `checkpointLayers` (`checkpoint`, `minimal`): each residual block is one
///   `Autograd.checkpoint` segment: only the block's input (the previous block's output, kept
///   anyway) and output are kept, and the block is run again in the backward pass.
/// - `recomputeStemAndTransitions` (`minimal`): the stem (conv1 → bn1 → ReLU → max pool) is also
///   a checkpointed segment, so nothing at the stem's resolution is kept but the image.
public final class ResNet: Module {
    public let configuration: ResNetConfiguration
    public let conv1: ConvLayer
    public let bn1: BatchNormLayer
    /// Stage s (0-based), block b: `layer{s+1}.{b}`.
    public let stages: [[BasicBlock]]
    public let fc: LinearLayer
    public var policy: MemoryPolicy

    public init(_ configuration: ResNetConfiguration, policy: MemoryPolicy = .naive) throws(ConfigurationError) {
        // Validates, and refuses inputs too small for the downsampling chain.
        let architecture = try Architecture(.resNet(configuration))
        self.configuration = configuration
        self.policy = policy
        let c = configuration
        conv1 = ConvLayer(c.inputShape.channels, c.stemChannels, kernel: 7, stride: 2, padding: 3, bias: c.convBias,
                          initialization: .pytorchDefault)
        bn1 = BatchNormLayer(c.stemChannels)
        var stages = [[BasicBlock]](repeating: [], count: c.stageChannels.count)
        for r in architecture.residualBlocks {
            stages[r.stage - 1].append(BasicBlock(inputWidth: r.inputChannels, outputWidth: r.outputChannels,
                                                  stride: r.stride, projection: r.hasProjection, convBias: c.convBias))
        }
        self.stages = stages
        fc = LinearLayer(architecture.finalChannels, c.classCount)
        super.init()
        register("conv1", conv1)
        register("bn1", bn1)
        for (s, blocks) in stages.enumerated() {
            let stage = register("layer\(s + 1)", Container())
            for (b, block) in blocks.enumerated() { stage.register("\(b)", block) }
        }
        register("fc", fc)
    }

    /// conv1 7x7/2 → bn1 → ReLU → 3x3/2 max pool (pad 1).
    func stem(_ x: Variable) -> Variable {
        Functional.maxPool2d(bn1(conv1(x), relu: true), PoolParameters(kernel: 3, stride: 2, padding: 1))
    }

    /// (C, N, H, W) → logits (classes, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        let expected = configuration.inputShape
        precondition(x.shape.count == 4 && x.shape[0] == expected.channels,
                     "ResNet: input \(x.shape) must be (\(expected.channels), N, H, W), channel-major")
        let honoured = policy.honoured(by: .resNet)
        let recomputeBlocks = honoured.checkpointLayers
        var h = honoured.recomputeStemAndTransitions ? Autograd.checkpoint("stem", x) { [self] in stem($0) } : stem(x)
        for (s, blocks) in stages.enumerated() {
            for (b, block) in blocks.enumerated() {
                h = recomputeBlocks ? Autograd.checkpoint("layer\(s + 1).\(b)", h) { block($0) } : block(h)
            }
        }
        DryRun.current?.enter("forward avgpool")   // a functional op (Architecture: "avgpool")
        return fc(Functional.globalAvgPool(h))
    }
}

extension ResNet: Network {
    public var modelConfiguration: ModelConfiguration { .resNet(configuration) }
}

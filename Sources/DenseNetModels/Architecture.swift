/// A convolution's hyper-parameters (square kernel, symmetric padding, no groups/dilation).
public struct ConvolutionSpec: Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var kernel: Int
    public var stride: Int
    public var padding: Int
    public var bias: Bool

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.bias = bias
    }
}

/// A pooling window (square, symmetric padding, floor mode as PyTorch's default).
public struct PoolingSpec: Hashable, Sendable {
    public var kernel: Int
    public var stride: Int
    public var padding: Int

    public init(kernel: Int, stride: Int, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }
}

/// A fully connected layer, weight `(out, in)`.
public struct LinearSpec: Hashable, Sendable {
    public var inFeatures: Int
    public var outFeatures: Int
    public var bias: Bool

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.bias = bias
    }
}

/// A model as an ordered list of named layers with shapes, parameter counts and FLOPs, derived
/// from a `ModelConfiguration`. The single description the model builder, the memory planner
/// and the summary table all read; it allocates nothing.
///
/// `layers` is in pre-order: a composite entry (dense block, dense layer, transition, residual
/// block) comes before its children and carries their sums. Totals are over `leaves` only.
/// A dense layer's `outputShape` is its k new channels; its block's is the concatenation.
public struct Architecture: Hashable, Sendable {
    /// One entry of the description.
    public struct Layer: Hashable, Sendable {
        /// What a layer computes. The last four are composites that group the entries after them.
        public enum Kind: Hashable, Sendable {
            case convolution(ConvolutionSpec)
            case batchNorm(channels: Int)
            case relu
            case dropout(rate: Double)
            case maxPool(PoolingSpec)
            case avgPool(PoolingSpec)
            case globalAvgPool
            case linear(LinearSpec)
            /// The residual addition (`out += identity or projection`).
            case add
            case denseBlock(index: Int, layers: Int)
            case denseLayer(block: Int, index: Int)
            case transition(index: Int)
            case residual(stage: Int, block: Int)

            public var isComposite: Bool {
                switch self {
                case .denseBlock, .denseLayer, .transition, .residual: return true
                default: return false
                }
            }
        }

        /// torchvision-style dotted name, e.g. `features.denseblock2.denselayer3.conv1`.
        public var name: String
        public var kind: Kind
        /// Nesting depth: 0 for top-level entries, +1 inside each composite.
        public var depth: Int
        /// Per-example shapes `(C, H, W)`.
        public var inputShape: FeatureShape
        public var outputShape: FeatureShape
        /// Weights and biases (BN: γ and β).
        public var trainableParameters: Int
        /// BN running mean and variance (2 per channel); `num_batches_tracked` is not counted
        /// (Keras' convention; see `Architecture.batchNormLayerCount`).
        public var nonTrainableParameters: Int
        /// Forward FLOPs per example: 2 × multiply-accumulates of convolutions and linear layers
        /// (biases, BN, ReLU, pooling and additions are not counted).
        public var forwardFLOPs: Int

        public var isComposite: Bool { kind.isComposite }
    }

    /// A dense block as the model builder and the memory planner need it.
    public struct DenseBlock: Hashable, Sendable {
        /// 1-based, as in the names.
        public var index: Int
        public var name: String
        /// `c0`: the block's input width.
        public var inputChannels: Int
        public var growthRate: Int
        public var layerCount: Int
        /// Width of the 1x1 bottleneck output (`bn_size · k`), nil without a bottleneck.
        public var bottleneckWidth: Int?
        /// Resolution inside the block (1x1 for the MLP).
        public var height: Int
        public var width: Int

        /// Input width of layer `i` (0-based): `c0 + i·k`.
        public func layerInputChannels(_ i: Int) -> Int {
            precondition(i >= 0 && i < layerCount, "DenseBlock \(index): layer \(i) outside 0..<\(layerCount)")
            return inputChannels + i * growthRate
        }

        /// Input widths of all layers, `[c0, c0 + k, …, c0 + (n−1)·k]`.
        public var layerInputWidths: [Int] { (0..<layerCount).map(layerInputChannels) }

        /// `c0 + n·k`: the concatenation of the input and every layer's k new channels.
        public var outputChannels: Int { inputChannels + layerCount * growthRate }
    }

    /// A transition between dense blocks.
    public struct Transition: Hashable, Sendable {
        public var index: Int
        public var name: String
        public var inputChannels: Int
        public var outputChannels: Int
        public var inputHeight: Int
        public var inputWidth: Int
        public var outputHeight: Int
        public var outputWidth: Int
    }

    /// A residual block of the ResNet baseline.
    public struct ResidualBlock: Hashable, Sendable {
        public var stage: Int
        public var block: Int
        public var name: String
        public var inputChannels: Int
        public var outputChannels: Int
        public var stride: Int
        /// Whether the identity path is a 1x1 projection conv (`downsample.0`).
        public var hasProjection: Bool
        public var outputHeight: Int
        public var outputWidth: Int
    }

    public let configuration: ModelConfiguration
    /// Every layer and composite, in pre-order.
    public internal(set) var layers: [Layer]
    public internal(set) var denseBlocks: [DenseBlock]
    public internal(set) var transitions: [Transition]
    public internal(set) var residualBlocks: [ResidualBlock]
    /// Smallest input height and width the downsampling chain accepts.
    public internal(set) var minimumInputHeight: Int
    public internal(set) var minimumInputWidth: Int

    public var name: String { configuration.name }
    public var inputShape: FeatureShape { configuration.inputShape }

    /// The entries that compute something (no composites).
    public var leaves: [Layer] { layers.filter { !$0.isComposite } }

    /// The model's output per example, `(outputs, 1, 1)`.
    public var outputShape: FeatureShape { leaves.last?.outputShape ?? inputShape }

    /// Width entering the head (after the last block, or the last ResNet stage).
    public var finalChannels: Int {
        if let last = denseBlocks.last { return last.outputChannels }
        return residualBlocks.last?.outputChannels ?? inputShape.channels
    }

    /// The entry with this dotted name, if any.
    public func layer(named name: String) -> Layer? {
        layers.first { $0.name == name }
    }
}

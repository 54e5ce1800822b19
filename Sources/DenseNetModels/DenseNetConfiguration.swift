/// A DenseNet described as data (Huang et al. 2017, arXiv 1608.06993). Every width is derived
/// from these numbers by `Architecture`; nothing here is a module or holds weights.
///
/// The network, in torchvision's names (`features.` prefix omitted here):
/// - stem: `.imagenet` = `conv0` 7x7/2 pad 3 → `norm0` → `relu0` → `pool0` max 3/2 pad 1;
///   `.cifar` = `conv0` 3x3/1 pad 1 only (no BN, no pooling: the original CIFAR DenseNet-BC,
///   which gives 769,162 parameters for L = 100, k = 12; a BN after it would add 2·24).
///   The d2l textbook DenseNet uses `.imagenet` with `convBias = true`.
/// - dense block `b` (`denseblock{b}`), layer `j` (`denselayer{j}`), input width `c0 + (j−1)·k`:
///   with a bottleneck: `norm1` → `relu1` → `conv1` 1x1 (→ bn_size·k) → `norm2` → `relu2` →
///   `conv2` 3x3 pad 1 (→ k) [→ dropout]; without: `norm1` → `relu1` → `conv1` 3x3 pad 1 (→ k).
///   The block's output is the concatenation of its input and all layers' outputs, `c0 + n·k`.
/// - transition `b` between blocks (`transition{b}`): `norm` → `relu` → `conv` 1x1
///   (c → ⌊θ·c⌋) → `pool` 2/2 (average, or max for the ablation).
/// - head: `norm5` (torchvision's name whatever the block count) → `relu` → global average pool
///   (`avgpool`) → `classifier` linear with bias.
public struct DenseNetConfiguration: Hashable, Sendable {
    /// The stem before the first dense block.
    public enum Stem: String, Hashable, Sendable {
        /// 7x7/2 conv (pad 3) + BN + ReLU + 3x3/2 max pool (pad 1): ImageNet models and d2l.
        case imagenet
        /// A single 3x3/1 conv (pad 1), no BN, no pooling: the CIFAR DenseNet(-BC).
        case cifar
    }

    /// The pooling that halves the resolution in each transition.
    public enum TransitionPooling: String, Hashable, Sendable {
        case average, max
    }

    /// Display name (the zoo's name for named models).
    public var name: String
    /// Growth rate k: channels each dense layer adds.
    public var growthRate: Int
    /// Number of dense layers per block.
    public var blockConfig: [Int]
    /// Channels the stem produces, `c0` of the first block.
    public var initialFeatures: Int
    /// `bn_size`: the 1x1 bottleneck produces `bottleneckFactor · k` channels; nil = no
    /// bottleneck (each layer is BN-ReLU-3x3 conv, as in d2l and the plain DenseNet).
    public var bottleneckFactor: Int?
    /// θ: a transition maps c channels to ⌊θ·c⌋ (0.5 in DenseNet-BC and torchvision, 1 = none).
    public var compression: Double
    /// Dropout after each dense layer's last conv (torchvision's `drop_rate`); 0 = none.
    public var dropRate: Double
    /// Classifier outputs.
    public var classCount: Int
    /// Per-example input `(C, H, W)`.
    public var inputShape: FeatureShape
    /// Whether every convolution has a bias (true in d2l; false in torchvision and CIFAR-BC).
    /// The classifier always has one.
    public var convBias: Bool
    public var transitionPooling: TransitionPooling
    public var stem: Stem

    public init(name: String = "densenet",
                growthRate: Int = 32,
                blockConfig: [Int] = [6, 12, 24, 16],
                initialFeatures: Int = 64,
                bottleneckFactor: Int? = 4,
                compression: Double = 0.5,
                dropRate: Double = 0,
                classCount: Int = 1000,
                inputShape: FeatureShape = FeatureShape(channels: 3, height: 224, width: 224),
                convBias: Bool = false,
                transitionPooling: TransitionPooling = .average,
                stem: Stem = .imagenet) {
        self.name = name
        self.growthRate = growthRate
        self.blockConfig = blockConfig
        self.initialFeatures = initialFeatures
        self.bottleneckFactor = bottleneckFactor
        self.compression = compression
        self.dropRate = dropRate
        self.classCount = classCount
        self.inputShape = inputShape
        self.convBias = convBias
        self.transitionPooling = transitionPooling
        self.stem = stem
    }

    /// Checks every number on its own (ranges); shape feasibility is checked by `Architecture`.
    public func validate() throws(ConfigurationError) {
        guard growthRate >= 1 else { throw .invalidGrowthRate(growthRate) }
        guard !blockConfig.isEmpty else { throw .emptyBlockConfig }
        for (i, n) in blockConfig.enumerated() where n < 1 {
            throw .invalidBlockLength(block: i + 1, layers: n)
        }
        guard initialFeatures >= 1 else { throw .invalidWidth(what: "initial features", value: initialFeatures) }
        if let f = bottleneckFactor, f < 1 { throw .invalidBottleneckFactor(f) }
        guard compression > 0, compression <= 1 else { throw .compressionOutOfRange(compression) }
        guard dropRate >= 0, dropRate < 1 else { throw .dropRateOutOfRange(dropRate) }
        guard classCount >= 1 else { throw .invalidClassCount(classCount) }
        guard inputShape.isPositive else {
            throw .invalidInputShape(inputShape, reason: "every extent of CxHxW must be at least 1")
        }
    }

    /// Width after a transition: ⌊θ·c⌋ computed as the reference implementations do
    /// (`int(num_features * compression)` in Python, `math.floor` in Lua), so that a θ such as
    /// 0.3 gives the same widths, and checkpoints the same shapes, as theirs.
    public func compressed(_ channels: Int) -> Int {
        Int((compression * Double(channels)).rounded(.down))
    }
}

// MARK: - The published configurations

extension DenseNetConfiguration {
    /// torchvision's `DenseNet(growth_rate, block_config, num_init_features)` with bn_size 4,
    /// θ = 0.5, no conv bias, ImageNet stem, 1000 classes, 3x224x224.
    public static func torchvision(name: String, growthRate: Int, blockConfig: [Int],
                                   initialFeatures: Int) -> DenseNetConfiguration {
        DenseNetConfiguration(name: name, growthRate: growthRate, blockConfig: blockConfig,
                              initialFeatures: initialFeatures)
    }

    /// The CIFAR DenseNet-BC of depth L and growth rate k: 3 blocks of (L − 4)/6 bottleneck
    /// layers, stem 3x3 conv to 2k channels, θ = 0.5, no conv bias, 3x32x32, 10 classes.
    /// L counts the stem conv, 2 convs per layer, the 2 transition convs and the classifier.
    public static func cifarBC(depth: Int, growthRate: Int) throws(ConfigurationError) -> DenseNetConfiguration {
        let name = "densenet-bc-\(depth)-\(growthRate)"
        guard depth >= 10, (depth - 4) % 6 == 0 else { throw .invalidDepth(depth, name: name) }
        guard growthRate >= 1 else { throw .invalidGrowthRate(growthRate) }
        guard growthRate <= Int.max / 2 else {
            throw .tooLarge(what: "growth rate k of \(name)", value: growthRate,
                            reason: "the stem's 2k channels overflow 64-bit arithmetic; use k ≤ 48 (the published range is 12 to 48)")
        }
        let n = (depth - 4) / 6
        return DenseNetConfiguration(name: name, growthRate: growthRate, blockConfig: [n, n, n],
                                     initialFeatures: 2 * growthRate, bottleneckFactor: 4,
                                     compression: 0.5, classCount: 10,
                                     inputShape: FeatureShape(channels: 3, height: 32, width: 32),
                                     convBias: false, stem: .cifar)
    }

    /// The d2l textbook DenseNet ("Densely Connected Networks"): stem 7x7/2 conv 64 with bias
    /// + BN + ReLU + max pool 3/2 pad 1; 4 blocks of 4 BN-ReLU-3x3 conv layers, k = 32, no
    /// bottleneck, conv bias; transitions halve the channels; 1x96x96, 10 classes.
    public static var d2l: DenseNetConfiguration {
        DenseNetConfiguration(name: "d2l", growthRate: 32, blockConfig: [4, 4, 4, 4],
                              initialFeatures: 64, bottleneckFactor: nil, compression: 0.5,
                              classCount: 10, inputShape: FeatureShape(channels: 1, height: 96, width: 96),
                              convBias: true, stem: .imagenet)
    }
}

/// Any model the zoo can name: a DenseNet, the d2l ResNet baseline, or the DenseNet idea on
/// fully connected layers. `Architecture(_:)` derives the layer-by-layer description.
public enum ModelConfiguration: Hashable, Sendable {
    case denseNet(DenseNetConfiguration)
    case resNet(ResNetConfiguration)
    case denseMLP(DenseMLPConfiguration)

    public var name: String {
        switch self {
        case .denseNet(let c): return c.name
        case .resNet(let c): return c.name
        case .denseMLP(let c): return c.name
        }
    }

    /// Per-example input shape; `(F, 1, 1)` for the MLP.
    public var inputShape: FeatureShape {
        switch self {
        case .denseNet(let c): return c.inputShape
        case .resNet(let c): return c.inputShape
        case .denseMLP(let c): return FeatureShape(features: c.inputFeatures)
        }
    }

    /// Classifier outputs (regression outputs for the MLP).
    public var outputCount: Int {
        switch self {
        case .denseNet(let c): return c.classCount
        case .resNet(let c): return c.classCount
        case .denseMLP(let c): return c.outputCount
        }
    }

    public func validate() throws(ConfigurationError) {
        switch self {
        case .denseNet(let c): try c.validate()
        case .resNet(let c): try c.validate()
        case .denseMLP(let c): try c.validate()
        }
    }
}

/// The d2l textbook ResNet ("Residual Networks"), the baseline DenseNet is compared with.
///
/// torchvision names: stem `conv1` 7x7/2 pad 3 (bias) → `bn1` → `relu` → `maxpool` 3/2 pad 1;
/// stage `s` (`layer{s}`), block `b` (`{b−1}`): `conv1` 3x3 (stride 2 in the first block of
/// stages 2…) → `bn1` → `relu1` → `conv2` 3x3 → `bn2`, plus `downsample.0`, a 1x1 projection
/// conv with bias and NO batch norm (d2l), where the width or resolution changes; `add`; `relu2`.
/// Head: `avgpool` (global) → `fc`.
public struct ResNetConfiguration: Hashable, Sendable {
    public var name: String
    /// Channels of the stem conv.
    public var stemChannels: Int
    /// Output channels of each stage.
    public var stageChannels: [Int]
    /// Residual blocks per stage.
    public var blocksPerStage: [Int]
    public var classCount: Int
    public var inputShape: FeatureShape
    /// Whether the convolutions have a bias (true in d2l).
    public var convBias: Bool

    public init(name: String = "resnet18", stemChannels: Int = 64, stageChannels: [Int] = [64, 128, 256, 512],
                blocksPerStage: [Int] = [2, 2, 2, 2], classCount: Int = 10,
                inputShape: FeatureShape = FeatureShape(channels: 1, height: 96, width: 96),
                convBias: Bool = true) {
        self.name = name
        self.stemChannels = stemChannels
        self.stageChannels = stageChannels
        self.blocksPerStage = blocksPerStage
        self.classCount = classCount
        self.inputShape = inputShape
        self.convBias = convBias
    }

    /// The d2l ResNet-18: 64-channel stem, stages 64-128-256-512 of 2 blocks, 1x96x96, 10 classes.
    public static var d2l: ResNetConfiguration { ResNetConfiguration() }

    public func validate() throws(ConfigurationError) {
        guard stemChannels >= 1 else { throw .invalidWidth(what: "stem channels", value: stemChannels) }
        guard !stageChannels.isEmpty else {
            throw .mismatchedLists("a ResNet needs at least one stage: give stage channels such as [64, 128, 256, 512]")
        }
        guard stageChannels.count == blocksPerStage.count else {
            throw .mismatchedLists("\(stageChannels.count) stage widths but \(blocksPerStage.count) block counts: give one block count per stage")
        }
        for (s, c) in stageChannels.enumerated() where c < 1 {
            throw .invalidWidth(what: "channels of stage \(s + 1)", value: c)
        }
        for (s, n) in blocksPerStage.enumerated() where n < 1 {
            throw .invalidBlockLength(block: s + 1, layers: n)
        }
        guard classCount >= 1 else { throw .invalidClassCount(classCount) }
        guard inputShape.isPositive else {
            throw .invalidInputShape(inputShape, reason: "every extent of CxHxW must be at least 1")
        }
    }
}

/// The DenseNet idea on fully connected layers, for tabular regression (d2l exercise: "design
/// an MLP-based model by applying the DenseNet idea").
///
/// Each dense layer sees the concatenation of the input features and every earlier layer's
/// output: `fc` Linear(c → growth) [→ `norm` BatchNorm1d(growth)] → `relu`. Between blocks a
/// transition `fc` Linear(c → ⌊θ·c⌋) → `relu` compresses; the head is `output`
/// Linear(total → outputs). Names: `features.denseblock{b}.denselayer{j}.{fc,norm,relu}`,
/// `features.transition{b}.{fc,relu}`, `output`.
///
/// Defaults: 10 input features (scikit-learn's diabetes set), growth 32, one block of 4 layers
/// (final width 10 + 4·32 = 138), no batch norm (442 rows are too few for stable batch
/// statistics), θ = 0.5, 1 output: 7,691 parameters.
///
/// With `denseConnections` false the same numbers describe the plain MLP the dense one is
/// compared with (the zoo's `mlp`): Σ blockConfig hidden layers of `growthRate` units, each
/// reading only the previous layer's output (no concatenation, no transitions, `compression`
/// unused): `features.layer{j}.{fc,norm,relu}`, then `output`. The zoo's `mlp`
/// (10 → 48 → 48 → 48 → 48 → 1) has 7,633 parameters.
public struct DenseMLPConfiguration: Hashable, Sendable {
    public var name: String
    public var inputFeatures: Int
    public var growthRate: Int
    public var blockConfig: [Int]
    public var compression: Double
    public var batchNorm: Bool
    public var outputCount: Int
    /// True: the DenseNet idea (each layer sees every earlier output). False: a plain MLP.
    public var denseConnections: Bool

    public init(name: String = "dense-mlp", inputFeatures: Int = 10, growthRate: Int = 32,
                blockConfig: [Int] = [4], compression: Double = 0.5, batchNorm: Bool = false,
                outputCount: Int = 1, denseConnections: Bool = true) {
        self.name = name
        self.inputFeatures = inputFeatures
        self.growthRate = growthRate
        self.blockConfig = blockConfig
        self.compression = compression
        self.batchNorm = batchNorm
        self.outputCount = outputCount
        self.denseConnections = denseConnections
    }

    /// The zoo's `mlp`: the plain MLP of about dense-mlp's size and the same depth.
    public static var plain: DenseMLPConfiguration {
        DenseMLPConfiguration(name: "mlp", growthRate: 48, blockConfig: [4], denseConnections: false)
    }

    /// Hidden layers of the plain MLP (all blocks in a row).
    public var hiddenLayerCount: Int { blockConfig.reduce(0, +) }

    public func validate() throws(ConfigurationError) {
        guard inputFeatures >= 1 else {
            throw .invalidInputShape(FeatureShape(features: inputFeatures), reason: "the MLP needs at least 1 input feature")
        }
        guard growthRate >= 1 else { throw .invalidGrowthRate(growthRate) }
        guard !blockConfig.isEmpty else { throw .emptyBlockConfig }
        for (i, n) in blockConfig.enumerated() where n < 1 {
            throw .invalidBlockLength(block: i + 1, layers: n)
        }
        guard compression > 0, compression <= 1 else { throw .compressionOutOfRange(compression) }
        guard outputCount >= 1 else { throw .invalidClassCount(outputCount) }
    }

    /// ⌊θ·c⌋, as `DenseNetConfiguration.compressed(_:)`.
    public func compressed(_ channels: Int) -> Int {
        Int((compression * Double(channels)).rounded(.down))
    }
}

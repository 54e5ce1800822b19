// Deriving an Architecture from a configuration: the layer order and names of each family,
// shape propagation, and the minimum-input check of the downsampling chain.

extension Architecture {
    /// Validates `configuration`, derives every layer, and checks that the input survives the
    /// downsampling chain. Throws `ConfigurationError` for anything the user can fix.
    public init(_ configuration: ModelConfiguration) throws(ConfigurationError) {
        try configuration.validate()
        var builder = ArchitectureBuilder(input: configuration.inputShape)
        switch configuration {
        case .denseNet(let c): try builder.buildDenseNet(c)
        case .resNet(let c): builder.buildResNet(c)
        case .denseMLP(let c): try builder.buildDenseMLP(c)
        }
        let minimum = builder.minimumSpatialSize()
        if let failure = builder.failure {
            throw .inputTooSmall(layer: failure.layer, input: configuration.inputShape,
                                 layerInputHeight: failure.height, layerInputWidth: failure.width,
                                 minimumHeight: minimum, minimumWidth: minimum)
        }
        self.configuration = configuration
        self.layers = builder.layers
        self.denseBlocks = builder.denseBlocks
        self.transitions = builder.transitions
        self.residualBlocks = builder.residualBlocks
        self.minimumInputHeight = minimum
        self.minimumInputWidth = minimum
    }

    /// Shorthand for `Architecture(.denseNet(configuration))`.
    public init(_ configuration: DenseNetConfiguration) throws(ConfigurationError) {
        try self.init(.denseNet(configuration))
    }
}

/// Accumulates layers in pre-order while tracking the running per-example shape.
struct ArchitectureBuilder {
    /// A spatial operation on the main path: output = ⌊(s + 2p − k)/stride⌋ + 1, valid when
    /// s + 2p ≥ k (PyTorch refuses a conv or pool whose padded input is smaller than its kernel).
    struct Window {
        var kernel: Int, stride: Int, padding: Int
        func output(_ size: Int) -> Int {
            size + 2 * padding >= kernel ? (size + 2 * padding - kernel) / stride + 1 : 0
        }
    }

    var layers: [Architecture.Layer] = []
    var denseBlocks: [Architecture.DenseBlock] = []
    var transitions: [Architecture.Transition] = []
    var residualBlocks: [Architecture.ResidualBlock] = []
    /// The running shape of the main path.
    var shape: FeatureShape
    var depth = 0
    /// The main path's spatial windows, in order, for the minimum-input computation.
    var chain: [Window] = []
    /// The first layer whose input is smaller than its window.
    var failure: (layer: String, height: Int, width: Int)?
    private var open: [Int] = []

    init(input: FeatureShape) { shape = input }

    // MARK: Primitive steps

    /// Appends a leaf reading `input` (default: the running shape), and makes its output the
    /// running shape unless `onMainPath` is false (the residual projection).
    @discardableResult
    mutating func leaf(_ name: String, _ kind: Architecture.Layer.Kind, input: FeatureShape? = nil,
                       onMainPath: Bool = true) -> FeatureShape {
        let x = input ?? shape
        var y = x
        switch kind {
        case .convolution(let c):
            precondition(c.inChannels == x.channels, "\(name): conv expects \(c.inChannels) channels, gets \(x)")
            y = spatial(name, x, Window(kernel: c.kernel, stride: c.stride, padding: c.padding), onMainPath)
            y.channels = c.outChannels
        case .maxPool(let p), .avgPool(let p):
            y = spatial(name, x, Window(kernel: p.kernel, stride: p.stride, padding: p.padding), onMainPath)
        case .batchNorm(let channels):
            precondition(channels == x.channels, "\(name): BN over \(channels) channels, input \(x)")
        case .globalAvgPool:
            y = FeatureShape(features: x.channels)
        case .linear(let l):
            precondition(l.inFeatures == x.elementCount, "\(name): linear expects \(l.inFeatures) features, input \(x)")
            y = FeatureShape(features: l.outFeatures)
        case .relu, .dropout, .add:
            break
        case .denseBlock, .denseLayer, .transition, .residual:
            preconditionFailure("\(name): composites are opened with open(_:_:)")
        }
        layers.append(Architecture.Layer(name: name, kind: kind, depth: depth, inputShape: x, outputShape: y,
                                         trainableParameters: kind.trainableParameters,
                                         nonTrainableParameters: kind.nonTrainableParameters,
                                         forwardFLOPs: kind.forwardFLOPs(output: y)))
        if onMainPath { shape = y }
        return y
    }

    private mutating func spatial(_ name: String, _ x: FeatureShape, _ w: Window, _ onMainPath: Bool) -> FeatureShape {
        if onMainPath { chain.append(w) }
        let y = FeatureShape(channels: x.channels, height: w.output(x.height), width: w.output(x.width))
        if failure == nil, y.height == 0 || y.width == 0 {
            failure = (name, x.height, x.width)
        }
        return y
    }

    /// Starts a composite; its children follow until the matching `close`.
    mutating func open(_ name: String, _ kind: Architecture.Layer.Kind) {
        precondition(kind.isComposite, "\(name): open(_:_:) is for composites")
        open.append(layers.count)
        layers.append(Architecture.Layer(name: name, kind: kind, depth: depth, inputShape: shape, outputShape: shape,
                                         trainableParameters: 0, nonTrainableParameters: 0, forwardFLOPs: 0))
        depth += 1
    }

    /// Ends the innermost composite with `output` (default: the running shape) and the sums
    /// of its leaves.
    mutating func close(output: FeatureShape? = nil) {
        let index = open.removeLast()
        depth -= 1
        let children = layers[(index + 1)...].filter { !$0.isComposite }
        layers[index].outputShape = output ?? shape
        layers[index].trainableParameters = children.reduce(0) { $0 + $1.trainableParameters }
        layers[index].nonTrainableParameters = children.reduce(0) { $0 + $1.nonTrainableParameters }
        layers[index].forwardFLOPs = children.reduce(0) { $0 + $1.forwardFLOPs }
    }

    /// Smallest square input side the main path accepts: walking the windows backwards, the
    /// input side needed for an output side m is `(m − 1)·stride + kernel − 2·padding`.
    func minimumSpatialSize() -> Int {
        chain.reversed().reduce(1) { m, w in max(1, (m - 1) * w.stride + w.kernel - 2 * w.padding) }
    }

    // MARK: Shared pieces

    mutating func conv(_ name: String, to outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                       bias: Bool) {
        leaf(name, .convolution(ConvolutionSpec(inChannels: shape.channels, outChannels: outChannels,
                                                kernel: kernel, stride: stride, padding: padding, bias: bias)))
    }

    mutating func batchNorm(_ name: String) {
        leaf(name, .batchNorm(channels: shape.channels))
    }

    /// 7x7/2 conv (pad 3) → BN → ReLU → 3x3/2 max pool (pad 1), with the given names.
    mutating func imagenetStem(width: Int, bias: Bool, names: (conv: String, norm: String, relu: String, pool: String)) {
        conv(names.conv, to: width, kernel: 7, stride: 2, padding: 3, bias: bias)
        batchNorm(names.norm)
        leaf(names.relu, .relu)
        leaf(names.pool, .maxPool(PoolingSpec(kernel: 3, stride: 2, padding: 1)))
    }

    /// Global average pool → linear with bias.
    mutating func classifierHead(pool: String, linear: String, classes: Int) {
        leaf(pool, .globalAvgPool)
        leaf(linear, .linear(LinearSpec(inFeatures: shape.channels, outFeatures: classes, bias: true)))
    }

    // MARK: DenseNet

    mutating func buildDenseNet(_ c: DenseNetConfiguration) throws(ConfigurationError) {
        let k = c.growthRate
        switch c.stem {
        case .imagenet:
            imagenetStem(width: c.initialFeatures, bias: c.convBias,
                         names: ("features.conv0", "features.norm0", "features.relu0", "features.pool0"))
        case .cifar:
            conv("features.conv0", to: c.initialFeatures, kernel: 3, padding: 1, bias: c.convBias)
        }
        for (b, layerCount) in c.blockConfig.enumerated() {
            let blockIndex = b + 1
            let blockName = "features.denseblock\(blockIndex)"
            let c0 = shape.channels
            denseBlocks.append(Architecture.DenseBlock(
                index: blockIndex, name: blockName, inputChannels: c0, growthRate: k, layerCount: layerCount,
                bottleneckWidth: c.bottleneckFactor.map { $0 * k }, height: shape.height, width: shape.width))
            open(blockName, .denseBlock(index: blockIndex, layers: layerCount))
            for j in 1...layerCount {
                let layerName = "\(blockName).denselayer\(j)"
                let input = shape
                open(layerName, .denseLayer(block: blockIndex, index: j))
                batchNorm("\(layerName).norm1")
                leaf("\(layerName).relu1", .relu)
                if let factor = c.bottleneckFactor {
                    conv("\(layerName).conv1", to: factor * k, kernel: 1, bias: c.convBias)
                    batchNorm("\(layerName).norm2")
                    leaf("\(layerName).relu2", .relu)
                    conv("\(layerName).conv2", to: k, kernel: 3, padding: 1, bias: c.convBias)
                } else {
                    conv("\(layerName).conv1", to: k, kernel: 3, padding: 1, bias: c.convBias)
                }
                if c.dropRate > 0 { leaf("\(layerName).dropout", .dropout(rate: c.dropRate)) }
                close()
                // The block concatenates the layer's k new channels to its input.
                shape = FeatureShape(channels: input.channels + k, height: input.height, width: input.width)
            }
            close()
            if blockIndex < c.blockConfig.count {
                try transition(blockIndex, compressedTo: c.compressed(shape.channels), configuration: c)
            }
        }
        batchNorm("features.norm5")
        leaf("relu", .relu)
        classifierHead(pool: "avgpool", linear: "classifier", classes: c.classCount)
    }

    private mutating func transition(_ index: Int, compressedTo out: Int,
                                     configuration c: DenseNetConfiguration) throws(ConfigurationError) {
        let name = "features.transition\(index)"
        let input = shape
        guard out >= 1 else {
            throw .transitionCollapses(transition: name, inputChannels: input.channels, compression: c.compression)
        }
        open(name, .transition(index: index))
        batchNorm("\(name).norm")
        leaf("\(name).relu", .relu)
        // Average pooling runs before the 1x1 convolution (they commute, bias included: a
        // quarter of the product, see `Transition` in DenseNet.swift); max pooling after it.
        let window = PoolingSpec(kernel: 2, stride: 2)
        if c.transitionPooling == .average {
            leaf("\(name).pool", .avgPool(window))
            conv("\(name).conv", to: out, kernel: 1, bias: c.convBias)
        } else {
            conv("\(name).conv", to: out, kernel: 1, bias: c.convBias)
            leaf("\(name).pool", .maxPool(window))
        }
        close()
        transitions.append(Architecture.Transition(
            index: index, name: name, inputChannels: input.channels, outputChannels: out,
            inputHeight: input.height, inputWidth: input.width, outputHeight: shape.height, outputWidth: shape.width))
    }

    // MARK: ResNet (d2l)

    mutating func buildResNet(_ c: ResNetConfiguration) {
        imagenetStem(width: c.stemChannels, bias: c.convBias, names: ("conv1", "bn1", "relu", "maxpool"))
        for (s, width) in c.stageChannels.enumerated() {
            for b in 0..<c.blocksPerStage[s] {
                // d2l: the first block of every stage but the first halves the resolution.
                let stride = (s > 0 && b == 0) ? 2 : 1
                let name = "layer\(s + 1).\(b)"
                let input = shape
                let projection = stride != 1 || input.channels != width
                open(name, .residual(stage: s + 1, block: b))
                conv("\(name).conv1", to: width, kernel: 3, stride: stride, padding: 1, bias: c.convBias)
                batchNorm("\(name).bn1")
                leaf("\(name).relu1", .relu)
                conv("\(name).conv2", to: width, kernel: 3, padding: 1, bias: c.convBias)
                batchNorm("\(name).bn2")
                if projection {
                    leaf("\(name).downsample.0",
                         .convolution(ConvolutionSpec(inChannels: input.channels, outChannels: width, kernel: 1,
                                                      stride: stride, bias: c.convBias)),
                         input: input, onMainPath: false)
                }
                leaf("\(name).add", .add)
                leaf("\(name).relu2", .relu)
                close()
                residualBlocks.append(Architecture.ResidualBlock(
                    stage: s + 1, block: b, name: name, inputChannels: input.channels, outputChannels: width,
                    stride: stride, hasProjection: projection, outputHeight: shape.height, outputWidth: shape.width))
            }
        }
        classifierHead(pool: "avgpool", linear: "fc", classes: c.classCount)
    }

    // MARK: Dense MLP

    mutating func buildDenseMLP(_ c: DenseMLPConfiguration) throws(ConfigurationError) {
        let k = c.growthRate
        if !c.denseConnections {
            // The plain MLP: hidden layers in a row, each reading only the previous output.
            for j in 1...c.hiddenLayerCount {
                leaf("features.layer\(j).fc", .linear(LinearSpec(inFeatures: shape.channels, outFeatures: k)))
                if c.batchNorm { batchNorm("features.layer\(j).norm") }
                leaf("features.layer\(j).relu", .relu)
            }
            leaf("output", .linear(LinearSpec(inFeatures: shape.channels, outFeatures: c.outputCount)))
            return
        }
        for (b, layerCount) in c.blockConfig.enumerated() {
            let blockIndex = b + 1
            let blockName = "features.denseblock\(blockIndex)"
            denseBlocks.append(Architecture.DenseBlock(
                index: blockIndex, name: blockName, inputChannels: shape.channels, growthRate: k,
                layerCount: layerCount, bottleneckWidth: nil, height: 1, width: 1))
            open(blockName, .denseBlock(index: blockIndex, layers: layerCount))
            for j in 1...layerCount {
                let layerName = "\(blockName).denselayer\(j)"
                let input = shape
                open(layerName, .denseLayer(block: blockIndex, index: j))
                leaf("\(layerName).fc", .linear(LinearSpec(inFeatures: input.channels, outFeatures: k)))
                if c.batchNorm { batchNorm("\(layerName).norm") }
                leaf("\(layerName).relu", .relu)
                close()
                shape = FeatureShape(features: input.channels + k)
            }
            close()
            if blockIndex < c.blockConfig.count {
                let name = "features.transition\(blockIndex)"
                let input = shape
                let out = c.compressed(input.channels)
                guard out >= 1 else {
                    throw .transitionCollapses(transition: name, inputChannels: input.channels, compression: c.compression)
                }
                open(name, .transition(index: blockIndex))
                leaf("\(name).fc", .linear(LinearSpec(inFeatures: input.channels, outFeatures: out)))
                leaf("\(name).relu", .relu)
                close()
                transitions.append(Architecture.Transition(
                    index: blockIndex, name: name, inputChannels: input.channels, outputChannels: out,
                    inputHeight: 1, inputWidth: 1, outputHeight: 1, outputWidth: 1))
            }
        }
        leaf("output", .linear(LinearSpec(inFeatures: shape.channels, outFeatures: c.outputCount)))
    }
}

import Foundation

// The configurations as JSON: what a checkpoint's metadata stores (`model_configuration`) and
// what a training state stores as its run's model, so `densenet evaluate` and `--resume`
// rebuild exactly the network the weights belong to, zoo name or not.
//
// The keys are the ones checkpoints have carried since they first stored a model (an input
// shape as "CxHxW", the enums as their raw names, `ModelConfiguration` as Swift's enum coding
// `{"denseNet": {"_0": {...}}}`), so every older checkpoint still loads
// (Tests/TrainingTests/LegacyCheckpointTests.swift). Decoding validates: a configuration that
// cannot be built is a decoding error that says why.

extension ModelConfiguration: Codable {
    private enum CodingKeys: String, CodingKey { case denseNet, resNet, denseMLP }
    private enum PayloadKeys: String, CodingKey { case _0 }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "expected one of denseNet, resNet, denseMLP"))
        }
        let payload = try container.nestedContainer(keyedBy: PayloadKeys.self, forKey: key)
        switch key {
        case .denseNet: self = .denseNet(try payload.decode(DenseNetConfiguration.self, forKey: ._0))
        case .resNet: self = .resNet(try payload.decode(ResNetConfiguration.self, forKey: ._0))
        case .denseMLP: self = .denseMLP(try payload.decode(DenseMLPConfiguration.self, forKey: ._0))
        }
        do { try validate() } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .denseNet(let c):
            var payload = container.nestedContainer(keyedBy: PayloadKeys.self, forKey: .denseNet)
            try payload.encode(c, forKey: ._0)
        case .resNet(let c):
            var payload = container.nestedContainer(keyedBy: PayloadKeys.self, forKey: .resNet)
            try payload.encode(c, forKey: ._0)
        case .denseMLP(let c):
            var payload = container.nestedContainer(keyedBy: PayloadKeys.self, forKey: .denseMLP)
            try payload.encode(c, forKey: ._0)
        }
    }

    /// Compact JSON with sorted keys, as checkpoint metadata stores it.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { preconditionFailure("ModelConfiguration: not encodable") }
        return String(decoding: data, as: UTF8.self)
    }

    /// The configuration a checkpoint's `model_configuration` holds, validated.
    public init(json: String) throws {
        self = try JSONDecoder().decode(ModelConfiguration.self, from: Data(json.utf8))
    }
}

extension FeatureShape {
    /// `CxHxW` with every extent positive, or a decoding error naming the text.
    static func decode(_ text: String, codingPath: [CodingKey]) throws -> FeatureShape {
        guard let shape = FeatureShape(parsing: text), shape.isPositive else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "input '\(text)' is not CxHxW"))
        }
        return shape
    }
}

extension DenseNetConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case name, growthRate, blockConfig, initialFeatures, bottleneckFactor, compression, dropRate, classCount
        case input, convBias, transitionPooling, stem
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let pooling = try c.decode(String.self, forKey: .transitionPooling), stem = try c.decode(String.self, forKey: .stem)
        guard let transitionPooling = TransitionPooling(rawValue: pooling), let stemKind = Stem(rawValue: stem) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath,
                                                    debugDescription: "unknown pooling '\(pooling)' or stem '\(stem)'"))
        }
        self.init(name: try c.decode(String.self, forKey: .name), growthRate: try c.decode(Int.self, forKey: .growthRate),
                  blockConfig: try c.decode([Int].self, forKey: .blockConfig),
                  initialFeatures: try c.decode(Int.self, forKey: .initialFeatures),
                  bottleneckFactor: try c.decodeIfPresent(Int.self, forKey: .bottleneckFactor),
                  compression: try c.decode(Double.self, forKey: .compression),
                  dropRate: try c.decode(Double.self, forKey: .dropRate),
                  classCount: try c.decode(Int.self, forKey: .classCount),
                  inputShape: try FeatureShape.decode(try c.decode(String.self, forKey: .input), codingPath: c.codingPath),
                  convBias: try c.decode(Bool.self, forKey: .convBias), transitionPooling: transitionPooling, stem: stemKind)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(growthRate, forKey: .growthRate)
        try c.encode(blockConfig, forKey: .blockConfig)
        try c.encode(initialFeatures, forKey: .initialFeatures)
        try c.encodeIfPresent(bottleneckFactor, forKey: .bottleneckFactor)
        try c.encode(compression, forKey: .compression)
        try c.encode(dropRate, forKey: .dropRate)
        try c.encode(classCount, forKey: .classCount)
        try c.encode(inputShape.description, forKey: .input)
        try c.encode(convBias, forKey: .convBias)
        try c.encode(transitionPooling.rawValue, forKey: .transitionPooling)
        try c.encode(stem.rawValue, forKey: .stem)
    }
}

extension ResNetConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case name, stemChannels, stageChannels, blocksPerStage, classCount, input, convBias
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), stemChannels: try c.decode(Int.self, forKey: .stemChannels),
                  stageChannels: try c.decode([Int].self, forKey: .stageChannels),
                  blocksPerStage: try c.decode([Int].self, forKey: .blocksPerStage),
                  classCount: try c.decode(Int.self, forKey: .classCount),
                  inputShape: try FeatureShape.decode(try c.decode(String.self, forKey: .input), codingPath: c.codingPath),
                  convBias: try c.decode(Bool.self, forKey: .convBias))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(stemChannels, forKey: .stemChannels)
        try c.encode(stageChannels, forKey: .stageChannels)
        try c.encode(blocksPerStage, forKey: .blocksPerStage)
        try c.encode(classCount, forKey: .classCount)
        try c.encode(inputShape.description, forKey: .input)
        try c.encode(convBias, forKey: .convBias)
    }
}

extension DenseMLPConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case name, inputFeatures, growthRate, blockConfig, compression, batchNorm, outputCount, denseConnections
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), inputFeatures: try c.decode(Int.self, forKey: .inputFeatures),
                  growthRate: try c.decode(Int.self, forKey: .growthRate), blockConfig: try c.decode([Int].self, forKey: .blockConfig),
                  compression: try c.decode(Double.self, forKey: .compression), batchNorm: try c.decode(Bool.self, forKey: .batchNorm),
                  outputCount: try c.decode(Int.self, forKey: .outputCount),
                  // Checkpoints from before the plain `mlp` existed have no field: they are dense.
                  denseConnections: try c.decodeIfPresent(Bool.self, forKey: .denseConnections) ?? true)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(inputFeatures, forKey: .inputFeatures)
        try c.encode(growthRate, forKey: .growthRate)
        try c.encode(blockConfig, forKey: .blockConfig)
        try c.encode(compression, forKey: .compression)
        try c.encode(batchNorm, forKey: .batchNorm)
        try c.encode(outputCount, forKey: .outputCount)
        try c.encode(denseConnections, forKey: .denseConnections)
    }
}

import DenseNetModels
import Foundation

/// A `ModelConfiguration` as JSON, so that a checkpoint says exactly which network its weights
/// belong to (zoo name or not) and `densenet evaluate` or `--resume` can rebuild it.
public enum ModelDescription: Codable, Equatable, Sendable {
    case denseNet(DenseNetFields)
    case resNet(ResNetFields)
    case denseMLP(DenseMLPFields)

    public struct DenseNetFields: Codable, Equatable, Sendable {
        public var name: String
        public var growthRate: Int
        public var blockConfig: [Int]
        public var initialFeatures: Int
        public var bottleneckFactor: Int?
        public var compression: Double
        public var dropRate: Double
        public var classCount: Int
        public var input: String
        public var convBias: Bool
        public var transitionPooling: String
        public var stem: String
    }

    public struct ResNetFields: Codable, Equatable, Sendable {
        public var name: String
        public var stemChannels: Int
        public var stageChannels: [Int]
        public var blocksPerStage: [Int]
        public var classCount: Int
        public var input: String
        public var convBias: Bool
    }

    public struct DenseMLPFields: Codable, Equatable, Sendable {
        public var name: String
        public var inputFeatures: Int
        public var growthRate: Int
        public var blockConfig: [Int]
        public var compression: Double
        public var batchNorm: Bool
        public var outputCount: Int
        /// nil (checkpoints from before the plain `mlp` existed) means true.
        public var denseConnections: Bool?
    }

    public init(_ configuration: ModelConfiguration) {
        switch configuration {
        case .denseNet(let c):
            self = .denseNet(DenseNetFields(
                name: c.name, growthRate: c.growthRate, blockConfig: c.blockConfig, initialFeatures: c.initialFeatures,
                bottleneckFactor: c.bottleneckFactor, compression: c.compression, dropRate: c.dropRate,
                classCount: c.classCount, input: c.inputShape.description, convBias: c.convBias,
                transitionPooling: c.transitionPooling.rawValue, stem: c.stem.rawValue))
        case .resNet(let c):
            self = .resNet(ResNetFields(
                name: c.name, stemChannels: c.stemChannels, stageChannels: c.stageChannels,
                blocksPerStage: c.blocksPerStage, classCount: c.classCount, input: c.inputShape.description,
                convBias: c.convBias))
        case .denseMLP(let c):
            self = .denseMLP(DenseMLPFields(
                name: c.name, inputFeatures: c.inputFeatures, growthRate: c.growthRate, blockConfig: c.blockConfig,
                compression: c.compression, batchNorm: c.batchNorm, outputCount: c.outputCount,
                denseConnections: c.denseConnections))
        }
    }

    public var name: String {
        switch self {
        case .denseNet(let f): return f.name
        case .resNet(let f): return f.name
        case .denseMLP(let f): return f.name
        }
    }

    /// The configuration, validated.
    public func configuration() throws -> ModelConfiguration {
        func shape(_ text: String) throws -> FeatureShape {
            guard let s = FeatureShape(parsing: text), s.isPositive else {
                throw TrainingError.invalidCheckpointMetadata(field: "model_configuration",
                                                              reason: "input '\(text)' is not CxHxW")
            }
            return s
        }
        let model: ModelConfiguration
        switch self {
        case .denseNet(let f):
            guard let pooling = DenseNetConfiguration.TransitionPooling(rawValue: f.transitionPooling),
                  let stem = DenseNetConfiguration.Stem(rawValue: f.stem) else {
                throw TrainingError.invalidCheckpointMetadata(
                    field: "model_configuration", reason: "unknown pooling '\(f.transitionPooling)' or stem '\(f.stem)'")
            }
            model = .denseNet(DenseNetConfiguration(
                name: f.name, growthRate: f.growthRate, blockConfig: f.blockConfig, initialFeatures: f.initialFeatures,
                bottleneckFactor: f.bottleneckFactor, compression: f.compression, dropRate: f.dropRate,
                classCount: f.classCount, inputShape: try shape(f.input), convBias: f.convBias,
                transitionPooling: pooling, stem: stem))
        case .resNet(let f):
            model = .resNet(ResNetConfiguration(
                name: f.name, stemChannels: f.stemChannels, stageChannels: f.stageChannels,
                blocksPerStage: f.blocksPerStage, classCount: f.classCount, inputShape: try shape(f.input),
                convBias: f.convBias))
        case .denseMLP(let f):
            model = .denseMLP(DenseMLPConfiguration(
                name: f.name, inputFeatures: f.inputFeatures, growthRate: f.growthRate, blockConfig: f.blockConfig,
                compression: f.compression, batchNorm: f.batchNorm, outputCount: f.outputCount,
                denseConnections: f.denseConnections ?? true))
        }
        try model.validate()
        try ModelBounds.check(model, field: "model_configuration")
        return model
    }

    /// Compact JSON (sorted keys), as stored in checkpoint metadata.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    public init(json: String) throws {
        do {
            self = try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8))
        } catch {
            throw TrainingError.invalidCheckpointMetadata(field: "model_configuration", reason: "\(error)")
        }
    }
}

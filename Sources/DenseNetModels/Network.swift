import Autograd
import NeuralLayers

/// A model the command lines can build, train, measure and save: every named model of the zoo.
/// Input channel-major (C, N, H, W) ((F, N) for the MLP), output (outputs, N).
public protocol Network: Module {
    var modelConfiguration: ModelConfiguration { get }
    /// The memory policy asked for; each family honours its part of it
    /// (`MemoryPolicy.honoured(by:)`), and every policy computes the same function.
    var policy: MemoryPolicy { get set }
    func callAsFunction(_ x: Variable) -> Variable
}

extension DenseNet: Network {
    public var modelConfiguration: ModelConfiguration { .denseNet(configuration) }
}

/// Builds the module for a configuration of the zoo.
public enum ModelFactory {
    public static func build(_ configuration: ModelConfiguration,
                             policy: MemoryPolicy = .naive) throws(ConfigurationError) -> any Network {
        switch configuration {
        case .denseNet(let c):
            return try DenseNet(c, policy: policy)
        case .resNet(let c):
            return try ResNet(c, policy: policy)
        case .denseMLP(let c):
            return c.denseConnections ? try DenseMLP(c, policy: policy) : try PlainMLP(c, policy: policy)
        }
    }

    /// `ModelZoo.configuration(named:classes:input:)` then `build`.
    public static func build(named name: String, classes: Int? = nil, input: String? = nil,
                             policy: MemoryPolicy = .naive) throws(ConfigurationError) -> any Network {
        try build(ModelZoo.configuration(named: name, classes: classes, input: input), policy: policy)
    }
}

extension ModelConfiguration {
    /// The family of this model, for `MemoryPolicy.honoured(by:)`.
    public var family: ModelFamily {
        switch self {
        case .denseNet: return .denseNet
        case .resNet: return .resNet
        case .denseMLP(let c): return c.denseConnections ? .denseMLP : .plainMLP
        }
    }

    /// Whether the model reads flat feature vectors (F, N) (the MLPs) rather than images
    /// (C, N, H, W). The one place that says so: the input shapes, the loader's resize and
    /// flattening, the loss and the summary's shapes all ask here.
    public var takesFeatureVectors: Bool {
        if case .denseMLP = self { return true }
        return false
    }

    /// The shape of a batch of `batch` inputs: (C, N, H, W), or (F, N) for the MLPs.
    public func batchShape(_ batch: Int) -> [Int] {
        let s = inputShape
        return takesFeatureVectors ? [s.channels, batch] : [s.channels, batch, s.height, s.width]
    }

    /// Whether the model regresses (mean squared error: the MLPs on tables) rather than
    /// classifies (cross-entropy).
    public var isRegression: Bool { takesFeatureVectors }
}

import Autograd
import NeuralLayers

/// A model the command lines can build, train, measure and save: every named model of the zoo.
/// Input channel-major (C, N, H, W) ((F, N) for the MLP), output (outputs, N).
public protocol Network: Module {
    var modelConfiguration: ModelConfiguration { get }
    /// The memory strategy (DenseNets honour all four; other models train the same under each).
    var strategy: MemoryStrategy { get set }
    func callAsFunction(_ x: Variable) -> Variable
}

extension DenseNet: Network {
    public var modelConfiguration: ModelConfiguration { .denseNet(configuration) }
}

/// Builds the module for a configuration of the zoo.
public enum ModelFactory {
    public static func build(_ configuration: ModelConfiguration,
                             strategy: MemoryStrategy = .naive) throws(ConfigurationError) -> any Network {
        switch configuration {
        case .denseNet(let c):
            return try DenseNet(c, strategy: strategy)
        case .resNet(let c):
            return try ResNet(c, strategy: strategy)
        case .denseMLP(let c):
            return c.denseConnections ? try DenseMLP(c, strategy: strategy) : try PlainMLP(c, strategy: strategy)
        }
    }

    /// `ModelZoo.configuration(named:classes:input:)` then `build`.
    public static func build(named name: String, classes: Int? = nil, input: String? = nil,
                             strategy: MemoryStrategy = .naive) throws(ConfigurationError) -> any Network {
        try build(ModelZoo.configuration(named: name, classes: classes, input: input), strategy: strategy)
    }
}

import Autograd
import NeuralLayers

/// The plain MLP a `DenseMLP` is compared with (`DenseMLPConfiguration.denseConnections`
/// false; the zoo's `mlp`): `features.layer{j}` = `fc` Linear(c → k) [→ `norm` BatchNorm1d(k)]
/// → ReLU for j = 1…Σ blockConfig, each reading only the previous layer's output, then `output`
/// Linear(k → outputs). PyTorch's default initialisation, as `DenseMLP`.
///
/// Input (F, N), or (F, N, 1, 1) (read as a view), output (outputs, N). Nothing is concatenated,
/// so every memory policy trains it the same way (`policy` is kept only for `Network`).
public final class PlainMLP: Module {
    public let configuration: DenseMLPConfiguration
    public let features = Container()
    public let layers: [DenseMLPLayer]
    public let output: LinearLayer
    public var policy: MemoryPolicy

    public init(_ configuration: DenseMLPConfiguration, policy: MemoryPolicy = .naive) throws(ConfigurationError) {
        precondition(!configuration.denseConnections, "PlainMLP: \(configuration.name) has dense connections; build a DenseMLP")
        // Validates (and gives the widths the layers must have).
        let architecture = try Architecture(.denseMLP(configuration))
        self.configuration = configuration
        self.policy = policy
        var width = configuration.inputFeatures
        var layers = [DenseMLPLayer]()
        for _ in 0..<configuration.hiddenLayerCount {
            layers.append(DenseMLPLayer(inputWidth: width, growthRate: configuration.growthRate,
                                        batchNorm: configuration.batchNorm))
            width = configuration.growthRate
        }
        let head = architecture.layer(named: "output")?.inputShape.channels
        precondition(width == head, "PlainMLP: built width \(width), Architecture's output layer reads \(String(describing: head))")
        self.layers = layers
        output = LinearLayer(width, configuration.outputCount)
        super.init()
        for (j, layer) in layers.enumerated() { features.register("layer\(j + 1)", layer) }
        register("features", features)
        register("output", output)
    }

    /// (F, N) or (F, N, 1, 1) → (outputs, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        let f = configuration.inputFeatures
        precondition(x.shape[0] == f && (x.shape.count == 2 || (x.shape.count == 4 && x.shape[2] == 1 && x.shape[3] == 1)),
                     "PlainMLP: input \(x.shape) must be (\(f), N) or (\(f), N, 1, 1), feature-major")
        var h = x.shape.count == 4 ? SharedFeatures.flatten(x) : x
        for layer in layers { h = layer(h) }
        return output(h)
    }
}

extension PlainMLP: Network {
    public var modelConfiguration: ModelConfiguration { .denseMLP(configuration) }
}

import Autograd
import Kernels
import NeuralLayers
import Runtime

/// A dense block: `layerCount` dense layers, layer i seeing the concatenation of the block input
/// and the outputs of layers 0..<i. Its memory policy is the part of the model's that a DenseNet
/// honours (`MemoryPolicy.honoured(by: .denseNet)`).
public final class DenseBlock: Module {
    public let inputWidth: Int
    public let growthRate: Int
    public let layers: [DenseLayer]
    public var policy: MemoryPolicy

    /// The block `spec` of an `Architecture`.
    public init(_ spec: Architecture.DenseBlock, dropRate: Float, convBias: Bool, policy: MemoryPolicy,
                initialization: ConvLayer.WeightInit = .kaimingNormal) {
        precondition(spec.layerCount > 0 && spec.inputChannels > 0 && spec.growthRate > 0,
                     "DenseBlock: layers \(spec.layerCount), input width \(spec.inputChannels), growth \(spec.growthRate) must be positive")
        self.inputWidth = spec.inputChannels
        self.growthRate = spec.growthRate
        self.policy = policy
        layers = spec.layerInputWidths.map { width in
            DenseLayer(inputWidth: width, growthRate: spec.growthRate, bottleneckWidth: spec.bottleneckWidth,
                       dropRate: dropRate, convBias: convBias, initialization: initialization)
        }
        super.init()
        for (i, layer) in layers.enumerated() { register("denselayer\(i + 1)", layer) }
    }

    /// Channels of the block output: input width + layers · k.
    public var outputWidth: Int { inputWidth + layers.count * growthRate }

    /// (c0, N, H, W) → (c0 + L·k, N, H, W)
    public func callAsFunction(_ x: Variable) -> Variable {
        precondition(x.shape.count == 4 && x.shape[0] == inputWidth,
                     "DenseBlock: input \(x.shape) must be (\(inputWidth), N, H, W)")
        if policy.sharedConcatenation {
            return SharedDenseBlock(block: self, keepBottleneck: !policy.recomputeBottleneck,
                                    keepNormalized: !policy.sharedNormalization && !policy.fuseNormalization,
                                    fuseNormalization: policy.fuseNormalization)(x)
        }
        var features = [x]
        for layer in layers { features.append(layer(features, checkpointed: policy.checkpointLayers)) }
        return Functional.concat(features)
    }
}

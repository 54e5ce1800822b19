import Autograd
import Kernels
import NeuralLayers
import Runtime

/// A dense block: `layerCount` dense layers, layer i seeing the concatenation of the block input
/// and the outputs of layers 0..<i. The memory strategy is a property of the block, set once
/// for the whole model.
public final class DenseBlock: Module {
    public let inputWidth: Int
    public let growthRate: Int
    public let layers: [DenseLayer]
    public var strategy: MemoryStrategy

    public init(layerCount: Int, inputWidth: Int, growthRate: Int, bottleneckFactor: Int?, dropRate: Float,
                convBias: Bool, strategy: MemoryStrategy, initialization: ConvLayer.WeightInit = .kaimingNormal) {
        precondition(layerCount > 0 && inputWidth > 0 && growthRate > 0,
                     "DenseBlock: layers \(layerCount), input width \(inputWidth), growth \(growthRate) must be positive")
        self.inputWidth = inputWidth
        self.growthRate = growthRate
        self.strategy = strategy
        layers = (0..<layerCount).map { i in
            DenseLayer(inputWidth: inputWidth + i * growthRate, growthRate: growthRate,
                       bottleneckFactor: bottleneckFactor, dropRate: dropRate, convBias: convBias,
                       initialization: initialization)
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
        switch strategy {
        case .naive, .checkpoint:
            var features = [x]
            for layer in layers { features.append(layer(features, checkpointed: strategy == .checkpoint)) }
            return Functional.concat(features)
        case .shared, .minimal, .sharedConcatenation:
            return SharedDenseBlock(block: self, keepBottleneck: strategy != .minimal,
                                    keepNormalized: strategy == .sharedConcatenation)(x)
        }
    }
}

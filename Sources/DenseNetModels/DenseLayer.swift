import Autograd
import Kernels
import NeuralLayers
import Runtime

/// One layer of a dense block (Huang et al. 2017, arXiv 1608.06993): BN → ReLU → 1x1 conv
/// (c → bn_size·k) → BN → ReLU → 3x3 conv (→ k), the DenseNet-BC bottleneck layer; or, without a
/// bottleneck (the textbook net), BN → ReLU → 3x3 conv (c → k). Names follow torchvision
/// (`norm1`, `conv1`, `norm2`, `conv2`); a layer without bottleneck has only `norm1`, `conv1`.
public final class DenseLayer: Module {
    public let inputWidth: Int
    public let growthRate: Int
    /// bn_size·k, or nil for a layer without bottleneck.
    public let bottleneckWidth: Int?
    public let dropRate: Float
    public let norm1: BatchNormLayer
    public let conv1: ConvLayer
    public let norm2: BatchNormLayer?
    public let conv2: ConvLayer?

    public init(inputWidth: Int, growthRate: Int, bottleneckWidth: Int?, dropRate: Float, convBias: Bool,
                initialization: ConvLayer.WeightInit = .kaimingNormal) {
        self.inputWidth = inputWidth
        self.growthRate = growthRate
        self.dropRate = dropRate
        norm1 = BatchNormLayer(inputWidth)
        if let width = bottleneckWidth {
            self.bottleneckWidth = width
            conv1 = ConvLayer(inputWidth, width, kernel: 1, bias: convBias, initialization: initialization)
            norm2 = BatchNormLayer(width)
            conv2 = ConvLayer(width, growthRate, kernel: 3, padding: 1, bias: convBias, initialization: initialization)
        } else {
            self.bottleneckWidth = nil
            conv1 = ConvLayer(inputWidth, growthRate, kernel: 3, padding: 1, bias: convBias, initialization: initialization)
            norm2 = nil
            conv2 = nil
        }
        super.init()
        register("norm1", norm1)
        register("conv1", conv1)
        if let norm2, let conv2 {
            register("norm2", norm2)
            register("conv2", conv2)
        }
    }

    /// BN → ReLU → conv1 of the concatenated input: torchvision's `bn_function`, which the
    /// checkpointed path applies to the unconcatenated inputs instead (`callAsFunction`).
    func bottleneck(_ concatenated: Variable) -> Variable {
        conv1(norm1(concatenated, relu: true))
    }

    /// The rest of the layer, from the bottleneck output to the k new feature maps.
    func tail(_ bottleneckOutput: Variable) -> Variable {
        var y = bottleneckOutput
        if let norm2, let conv2 { y = conv2(norm2(y, relu: true)) }
        return Functional.dropout(y, p: dropRate, training: isTraining)
    }

    /// The autograd path of the `naive` and `checkpoint` strategies: the layer's inputs are the
    /// feature maps of all earlier layers, concatenated here into a new tensor (`naive`, as
    /// `torch.cat` in the textbook). Checkpointed (torchvision's `memory_efficient=True`), the
    /// segment keeps only its inputs either way, and norm1 reads them where they lie
    /// (`Functional.concatBatchNorm`): the same numbers without the concatenation's pass, in
    /// the forward and again in the recompute, or its gradient's split.
    public func callAsFunction(_ features: [Variable], checkpointed: Bool) -> Variable {
        if checkpointed {
            let b = Autograd.checkpoint("denselayer.bottleneck", features) { [self] inputs in
                conv1(norm1(concatenating: inputs, relu: true))
            }
            return tail(b)
        }
        let input = features.count == 1 ? features[0] : Functional.concat(features)
        return tail(bottleneck(input))
    }
}

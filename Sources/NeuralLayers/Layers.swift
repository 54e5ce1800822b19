import Autograd
import Kernels
import Runtime

/// Weight initialisation, seeded: every layer draws its own seed from this stream, so a model
/// built twice with the same starting seed has the same weights.
public enum Initialization {
    nonisolated(unsafe) public static var seed: UInt64 = 42

    public static func nextSeed() -> UInt64 {
        seed &+= 0xD1B5_4A32_D192_ED03
        return seed
    }

    /// He/Kaiming normal, fan-in, ReLU gain (torchvision's DenseNet convolutions).
    public static func kaimingNormal(_ shape: [Int]) -> Tensor {
        let fanIn = shape.dropFirst().reduce(1, *)
        return Tensor.randomNormal(shape, std: (2 / Float(fanIn)).squareRoot(), seed: nextSeed(), category: .parameters)
    }

    /// U(−1/√fan_in, 1/√fan_in): PyTorch's default for conv and linear weights and biases.
    public static func uniformFanIn(_ shape: [Int], fanIn: Int) -> Tensor {
        let bound = 1 / Float(max(fanIn, 1)).squareRoot()
        return Tensor.randomUniform(shape, low: -bound, high: bound, seed: nextSeed(), category: .parameters)
    }
}

/// 2-D convolution layer over channel-major (Cin, N, H, W) input.
public final class ConvLayer: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let geometry: ConvParameters

    public enum WeightInit { case kaimingNormal, pytorchDefault }

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = false, initialization: WeightInit = .kaimingNormal) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "ConvLayer: invalid geometry in=\(inChannels) out=\(outChannels) k=\(kernel) s=\(stride) p=\(padding)")
        let shape = [outChannels, inChannels, kernel, kernel]
        let fanIn = inChannels * kernel * kernel
        let w = initialization == .kaimingNormal ? Initialization.kaimingNormal(shape)
                                                 : Initialization.uniformFanIn(shape, fanIn: fanIn)
        self.weight = Parameter(w, label: "conv.weight")
        self.bias = bias ? Parameter(Initialization.uniformFanIn([outChannels], fanIn: fanIn), label: "conv.bias") : nil
        self.geometry = ConvParameters(kernel: kernel, stride: stride, padding: padding)
        super.init()
        register(parameter: "weight", weight)
        if let b = self.bias { register(parameter: "bias", b) }
    }

    public func callAsFunction(_ x: Variable) -> Variable {
        enterForward()
        return Functional.conv2d(x, weight: weight.variable, bias: bias?.variable, geometry)
    }
}

/// Batch normalisation over the channels of channel-major input, optionally fused with the
/// ReLU that follows it in every DenseNet and ResNet layer. Its rule (training vs evaluation,
/// one running-statistics update per forward pass) is `BatchNormState`'s.
public final class BatchNormLayer: Module {
    public let weight: Parameter
    public let bias: Parameter
    /// Running statistics and the batch count.
    public let state: BatchNormState

    public init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        precondition(channels > 0, "BatchNormLayer: channels must be positive, got \(channels)")
        weight = Parameter(Tensor.filled([channels], 1, category: .parameters), label: "bn.weight")
        bias = Parameter(Tensor.zeros([channels], category: .parameters), label: "bn.bias")
        state = BatchNormState(channels: channels, momentum: momentum, eps: eps)
        super.init()
        register(parameter: "weight", weight)
        register(parameter: "bias", bias)
        register(buffer: "running_mean", state.runningMean)
        register(buffer: "running_var", state.runningVar)
    }

    public var channels: Int { weight.count }
    public var runningMean: Tensor { state.runningMean }
    public var runningVar: Tensor { state.runningVar }
    /// Training-mode forward passes (PyTorch's num_batches_tracked).
    public var batchesTracked: Int { state.batchesTracked }

    public func callAsFunction(_ x: Variable, relu: Bool = false) -> Variable {
        enterForward()
        return Functional.batchNorm(x, weight: weight.variable, bias: bias.variable, state: state,
                                    training: isTraining, relu: relu)
    }

    /// This layer applied to the concatenation of `xs` along channels, without making it
    /// (`Functional.concatBatchNorm`).
    public func callAsFunction(concatenating xs: [Variable], relu: Bool = false) -> Variable {
        enterForward()
        return Functional.concatBatchNorm(xs, weight: weight.variable, bias: bias.variable, state: state,
                                          training: isTraining, relu: relu)
    }
}

/// Fully connected layer over (in, N) features.
public final class LinearLayer: Module {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, zeroBias: Bool = false) {
        precondition(inFeatures > 0 && outFeatures > 0, "LinearLayer: invalid size \(inFeatures)→\(outFeatures)")
        weight = Parameter(Initialization.uniformFanIn([outFeatures, inFeatures], fanIn: inFeatures), label: "linear.weight")
        if bias {
            let b = zeroBias ? Tensor.zeros([outFeatures], category: .parameters)
                             : Initialization.uniformFanIn([outFeatures], fanIn: inFeatures)
            self.bias = Parameter(b, label: "linear.bias")
        } else {
            self.bias = nil
        }
        super.init()
        register(parameter: "weight", weight)
        if let b = self.bias { register(parameter: "bias", b) }
    }

    public func callAsFunction(_ x: Variable) -> Variable {
        enterForward()
        return Functional.linear(x, weight: weight.variable, bias: bias?.variable)
    }
}

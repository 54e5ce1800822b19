import Autograd
import Kernels
import NeuralLayers
import Runtime

/// One dense fully connected layer: `fc` Linear(c → k) [→ `norm` BatchNorm1d(k)] → ReLU.
public final class DenseMLPLayer: Module {
    public let inputWidth: Int
    public let growthRate: Int
    public let fc: LinearLayer
    public let norm: BatchNormLayer?

    public init(inputWidth: Int, growthRate: Int, batchNorm: Bool) {
        self.inputWidth = inputWidth
        self.growthRate = growthRate
        fc = LinearLayer(inputWidth, growthRate)
        norm = batchNorm ? BatchNormLayer(growthRate) : nil
        super.init()
        register("fc", fc)
        if let norm { register("norm", norm) }
    }

    /// (c, N) → (k, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        precondition(x.shape.count == 2 && x.shape[0] == inputWidth,
                     "DenseMLPLayer: input \(x.shape) must be (\(inputWidth), N)")
        let y = fc(x)
        if let norm { return norm(y, relu: true) }
        return Functional.relu(y)
    }
}

/// A dense block of fully connected layers: layer i sees the concatenation of the block input
/// and the outputs of layers 0..<i; the block's output is all of them, `c0 + L·k` features.
///
/// Memory policy (`MemoryPolicy.honoured(by: .denseMLP)`; all compute the same function):
/// - neither field (`naive`): each layer concatenates its inputs into a new tensor
///   (`torch.cat`), and the block concatenates everything once more at the end: stored features
///   grow quadratically.
/// - `checkpointLayers` alone (`checkpoint`): each layer's concatenation → fc [→ norm] → ReLU is
///   an `Autograd.checkpoint` segment (torchvision's `memory_efficient`): only the layers' k-wide
///   outputs are kept, the concatenations are redone in backward; the block output is still one
///   new concatenation.
/// - `sharedConcatenation` (`shared`): the block owns one buffer of its final width (features,
///   N); its input is copied into rows [0, c0) and layer l writes its outputs into rows
///   [c_l, c_l + k), so every layer reads its input as a zero-copy prefix view and nothing is
///   concatenated (nothing in the buffer is ever overwritten, so the views the backward pass
///   keeps stay valid).
/// - both (`minimal`): the buffer, with each layer also a checkpoint segment over its prefix
///   view: the block keeps its buffer and nothing else.
public final class DenseMLPBlock: Module {
    public let inputWidth: Int
    public let growthRate: Int
    public let layers: [DenseMLPLayer]
    public var policy: MemoryPolicy

    public init(layerCount: Int, inputWidth: Int, growthRate: Int, batchNorm: Bool, policy: MemoryPolicy) {
        precondition(layerCount > 0 && inputWidth > 0 && growthRate > 0,
                     "DenseMLPBlock: layers \(layerCount), input width \(inputWidth), growth \(growthRate) must be positive")
        self.inputWidth = inputWidth
        self.growthRate = growthRate
        self.policy = policy.honoured(by: .denseMLP)
        layers = (0..<layerCount).map {
            DenseMLPLayer(inputWidth: inputWidth + $0 * growthRate, growthRate: growthRate, batchNorm: batchNorm)
        }
        super.init()
        for (i, layer) in layers.enumerated() { register("denselayer\(i + 1)", layer) }
    }

    /// `c0 + L·k`.
    public var outputWidth: Int { inputWidth + layers.count * growthRate }

    /// (c0, N) → (c0 + L·k, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        precondition(x.shape.count == 2 && x.shape[0] == inputWidth,
                     "DenseMLPBlock: input \(x.shape) must be (\(inputWidth), N)")
        let checkpointed = policy.checkpointLayers
        guard policy.sharedConcatenation else {
            var features = [x]
            for layer in layers {
                features.append(checkpointed ? Autograd.checkpoint("dense-mlp.layer", features) { layer(Self.joined($0)) }
                                             : layer(Self.joined(features)))
            }
            return Functional.concat(features)
        }
        do {
            let buffer = Tensor(shape: [outputWidth, x.shape[1]], category: .activations)
            var pieces = [SharedFeatures.place(x, into: buffer.channels(0..<inputWidth))]
            for layer in layers {
                let input = SharedFeatures.prefix(pieces, of: buffer)
                let output = checkpointed
                    ? Autograd.checkpoint("dense-mlp.layer", input) { layer($0) }
                    : layer(input)
                let c = layer.inputWidth
                pieces.append(SharedFeatures.place(output, into: buffer.channels(c..<(c + growthRate))))
            }
            return SharedFeatures.prefix(pieces, of: buffer)
        }
    }

    /// The concatenation of `features`, or the single input itself (layer 1 copies nothing).
    static func joined(_ features: [Variable]) -> Variable {
        features.count == 1 ? features[0] : Functional.concat(features)
    }
}

/// The two differentiable operations of the shared feature buffer (channel-major (C, N)).
enum SharedFeatures {
    /// Copies `x` into `slice` (rows of a block's buffer) and returns the slice as the same
    /// variable: the gradient passes through unchanged.
    static func place(_ x: Variable, into slice: Tensor) -> Variable {
        precondition(slice.shape == x.shape, "SharedFeatures.place: \(x.shape) into slice \(slice.shape)")
        slice.assign(x.value)
        return Autograd.record("dense-mlp.place", slice, inputs: [x]) { gy, g in
            if let dx = g[0] { Elementwise.accumulate(gy, into: dx) }
        }
    }

    /// The concatenation of `pieces`, which lie one after another from row 0 of `buffer`, as a
    /// view of the buffer's prefix (no copy); backward splits the gradient as a concatenation's.
    static func prefix(_ pieces: [Variable], of buffer: Tensor) -> Variable {
        let widths = pieces.map { $0.shape[0] }
        let value = buffer.channels(0..<widths.reduce(0, +))
        return Autograd.record("dense-mlp.prefix", value, inputs: pieces) { gy, g in
            Concat.backward(gy, dxs: g, channels: widths)
        }
    }

    /// (F, N, 1, 1) → (F, N): the same elements; the gradient is reshaped back.
    static func flatten(_ x: Variable) -> Variable {
        precondition(x.shape.count == 4 && x.shape[2] == 1 && x.shape[3] == 1,
                     "SharedFeatures.flatten: \(x.shape) is not (F, N, 1, 1)")
        let value = x.value.reshaped([x.shape[0], x.shape[1]])
        return Autograd.record("dense-mlp.flatten", value, inputs: [x]) { gy, g in
            if let dx = g[0] { Elementwise.accumulate(gy, into: dx.reshaped(gy.shape)) }
        }
    }
}

/// Between two dense blocks: `fc` Linear(c → ⌊θ·c⌋) → ReLU.
public final class DenseMLPTransition: Module {
    public let fc: LinearLayer

    public init(inputWidth: Int, outputWidth: Int) {
        fc = LinearLayer(inputWidth, outputWidth)
        super.init()
        register("fc", fc)
    }

    public func callAsFunction(_ x: Variable) -> Variable { Functional.relu(fc(x)) }
}

/// The DenseNet idea on fully connected layers (d2l exercise), built from a
/// `DenseMLPConfiguration`: `features.denseblock{b}.denselayer{j}.{fc,norm}`,
/// `features.transition{b}.fc`, `output`. PyTorch's default initialisation (uniform, fan-in);
/// the default `dense-mlp` has 7,691 trainable parameters.
///
/// Input (F, N), or (F, N, 1, 1) (read as a view), output (outputs, N). Memory policies: see
/// `DenseMLPBlock`; transitions and the output layer run the same under all of them.
public final class DenseMLP: Module {
    public let configuration: DenseMLPConfiguration
    public let features = Container()
    public let blocks: [DenseMLPBlock]
    public let transitions: [DenseMLPTransition]
    public let output: LinearLayer

    public var policy: MemoryPolicy {
        didSet { for block in blocks { block.policy = policy.honoured(by: .denseMLP) } }
    }

    public init(_ configuration: DenseMLPConfiguration, policy: MemoryPolicy = .naive) throws(ConfigurationError) {
        // Validates, and refuses a transition that compresses to nothing.
        let architecture = try Architecture(.denseMLP(configuration))
        self.configuration = configuration
        self.policy = policy
        blocks = architecture.denseBlocks.map {
            DenseMLPBlock(layerCount: $0.layerCount, inputWidth: $0.inputChannels, growthRate: $0.growthRate,
                          batchNorm: configuration.batchNorm, policy: policy)
        }
        transitions = architecture.transitions.map {
            DenseMLPTransition(inputWidth: $0.inputChannels, outputWidth: $0.outputChannels)
        }
        output = LinearLayer(architecture.finalChannels, configuration.outputCount)
        super.init()
        for (i, block) in blocks.enumerated() {
            features.register("denseblock\(i + 1)", block)
            if i < transitions.count { features.register("transition\(i + 1)", transitions[i]) }
        }
        register("features", features)
        register("output", output)
    }

    /// (F, N) or (F, N, 1, 1) → (outputs, N)
    public func callAsFunction(_ x: Variable) -> Variable {
        let f = configuration.inputFeatures
        precondition(x.shape[0] == f && (x.shape.count == 2 || (x.shape.count == 4 && x.shape[2] == 1 && x.shape[3] == 1)),
                     "DenseMLP: input \(x.shape) must be (\(f), N) or (\(f), N, 1, 1), feature-major")
        var h = x.shape.count == 4 ? SharedFeatures.flatten(x) : x
        for (i, block) in blocks.enumerated() {
            h = block(h)
            if i < transitions.count { h = transitions[i](h) }
        }
        return output(h)
    }
}

extension DenseMLP: Network {
    public var modelConfiguration: ModelConfiguration { .denseMLP(configuration) }
}

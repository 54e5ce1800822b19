/// Everything a user can get wrong when naming or describing a model: each case says what is
/// wrong and, in `description`, what to do instead. Programmer errors stay `precondition`s.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Growth rate `k` below 1.
    case invalidGrowthRate(Int)
    /// The block configuration has no blocks.
    case emptyBlockConfig
    /// Block `block` (1-based) has fewer than one layer.
    case invalidBlockLength(block: Int, layers: Int)
    /// A channel count that must be at least 1 (what names it, the value).
    case invalidWidth(what: String, value: Int)
    /// Bottleneck factor (`bn_size`) below 1; use nil for no bottleneck.
    case invalidBottleneckFactor(Int)
    /// Compression θ outside (0, 1].
    case compressionOutOfRange(Double)
    /// Dropout rate outside [0, 1).
    case dropRateOutOfRange(Double)
    /// Fewer than one class (or output).
    case invalidClassCount(Int)
    /// An input shape with an extent below 1, or of the wrong form for the model.
    case invalidInputShape(FeatureShape, reason: String)
    /// `--input` text that is neither `CxHxW` nor `F`.
    case malformedInput(String, expected: String)
    /// A DenseNet-BC depth `L` that is not `6n + 4` with `n ≥ 1`.
    case invalidDepth(Int, name: String)
    /// A model name that matches a known family but not its pattern (e.g. `densenet-bc-100`).
    case malformedName(String, expected: String)
    /// A model name the zoo does not know.
    case unknownModel(String, known: [String])
    /// A transition whose compression leaves no channel (`⌊θ·c⌋ = 0`).
    case transitionCollapses(transition: String, inputChannels: Int, compression: Double)
    /// The input is too small for the downsampling chain: `layer` would receive (or produce)
    /// nothing. The smallest accepted spatial size is `minimumHeight × minimumWidth`.
    case inputTooSmall(layer: String, input: FeatureShape, layerInputHeight: Int, layerInputWidth: Int,
                       minimumHeight: Int, minimumWidth: Int)
    /// Stage lists (ResNet) or other paired lists of different lengths.
    case mismatchedLists(String)
    /// A number too large for the model's sizes to be computed at all (`what` names it).
    case tooLarge(what: String, value: Int, reason: String)
    /// A memory policy name that is neither a preset nor a field.
    case unknownMemoryPolicy(String, known: [String])

    public var description: String {
        switch self {
        case .invalidGrowthRate(let k):
            return "growth rate k = \(k) is invalid: each dense layer must add at least 1 channel; use k ≥ 1 (12, 24, 32, 40 and 48 are the published values)"
        case .emptyBlockConfig:
            return "the block configuration is empty: give at least one dense block, e.g. [6, 12, 24, 16]"
        case .invalidBlockLength(let block, let layers):
            return "dense block \(block) has \(layers) layers: every block needs at least 1 layer"
        case .invalidWidth(let what, let value):
            return "\(what) = \(value) is invalid: it must be at least 1"
        case .invalidBottleneckFactor(let f):
            return "bottleneck factor (bn_size) = \(f) is invalid: use ≥ 1 (4 in DenseNet-B/BC), or no bottleneck at all"
        case .compressionOutOfRange(let c):
            return "compression θ = \(c) is outside (0, 1]: use 0.5 for DenseNet-BC or 1 for no compression"
        case .dropRateOutOfRange(let p):
            return "dropout rate \(p) is outside [0, 1): use 0 for none, or e.g. 0.2"
        case .invalidClassCount(let n):
            return "class count \(n) is invalid: a classifier needs at least 1 output; pass --classes N with N ≥ 1"
        case .invalidInputShape(let shape, let reason):
            return "input shape \(shape) is invalid: \(reason)"
        case .malformedInput(let text, let expected):
            return "cannot read input shape '\(text)': expected \(expected)"
        case .invalidDepth(let depth, let name):
            let n = max(1, (depth - 4) / 6)
            let lower = 6 * n + 4, upper = 6 * (n + 1) + 4
            let hint = lower == depth || depth < 10 ? "the smallest is 10" : "the nearest are \(lower) and \(upper)"
            return "\(name): depth L = \(depth) is not 6n + 4 with n ≥ 1 (3 dense blocks of (L − 4)/6 bottleneck layers, plus the stem conv, 2 transitions and the classifier); \(hint), e.g. densenet-bc-100-12"
        case .malformedName(let name, let expected):
            return "cannot read model name '\(name)': expected \(expected)"
        case .unknownModel(let name, let known):
            return "unknown model '\(name)'; known models: \(known.joined(separator: ", "))"
        case .transitionCollapses(let transition, let channels, let compression):
            return "\(transition) would keep ⌊\(compression) · \(channels)⌋ = 0 channels: raise the compression or the block widths"
        case .inputTooSmall(let layer, let input, let h, let w, let minH, let minW):
            return "input \(input) is too small: \(layer) receives \(h)x\(w), too small for its kernel; this model needs at least \(minH)x\(minW) (e.g. --input \(input.channels)x\(minH)x\(minW))"
        case .mismatchedLists(let what):
            return what
        case .tooLarge(let what, let value, let reason):
            return "\(what) = \(value) is too large: \(reason)"
        case .unknownMemoryPolicy(let text, let known):
            return "unknown memory strategy '\(text)': use a preset or fields joined by '+' (\(known.joined(separator: ", ")))"
        }
    }
}

import Foundation

/// What a model keeps for its backward pass, as one switch per saving: the memory strategy as
/// data. The named presets (`naive`, `checkpoint`, `shared`, `minimal`, and the ablation rung
/// `shared-concat`) are values of this type; any other combination can be asked for by listing
/// its fields (`shared+recompute-bottleneck`). Every policy computes the same function: only
/// what is kept, and so recomputed, changes (tested to 1e-4 in StrategyEquivalenceTests).
///
/// The savings are those of Pleiss et al. 2017, "Memory-Efficient Implementation of DenseNets"
/// (arXiv 1707.06990), plus torchvision's `memory_efficient=True` checkpointing and recompute
/// of the stem and transitions. Which fields a model family honours is said in one place,
/// `honoured(by:)`; the others are ignored by that family.
public struct MemoryPolicy: Hashable, Sendable {
    /// Dense blocks own one feature buffer of their final width and every layer writes its k
    /// new maps into it: no layer copies the concatenation of its inputs (Pleiss et al., shared
    /// storage for concatenation).
    public var sharedConcatenation = false
    /// The BN/ReLU outputs of all layers of a block live in one storage, recomputed in backward
    /// (Pleiss et al., shared storage for batch normalisation). Needs `sharedConcatenation`.
    public var sharedNormalization = false
    /// The BN/ReLU output that feeds a bottleneck layer's 1x1 conv is never stored: each thread
    /// normalises a cache-sized tile of it as the product reads it (forward, recompute, weight
    /// gradient), and its gradient is taken tile by tile too (Conv2d+NormalizedInput.swift,
    /// Conv2d+NormalizedInputGradient.swift). Replaces the shared BN/ReLU storage of bottleneck layers.
    /// Transitions with average pooling likewise run BN → ReLU → pooling as one pass that keeps
    /// only the pooled quarter (BatchNorm+AveragePool.swift). Needs `sharedConcatenation`.
    public var fuseNormalization = false
    /// The bottleneck half of a dense layer (1x1 conv output and its BN/ReLU) is recomputed in
    /// backward instead of kept. Needs `sharedConcatenation`.
    public var recomputeBottleneck = false
    /// Each layer is a checkpointed segment recomputed in backward: a dense layer's
    /// concat → BN → ReLU → 1x1 conv (torchvision's `memory_efficient=True`), a residual block,
    /// a dense MLP layer.
    public var checkpointLayers = false
    /// The stem and the transitions are checkpointed segments that keep only their inputs.
    public var recomputeStemAndTransitions = false

    public init(sharedConcatenation: Bool = false, sharedNormalization: Bool = false, fuseNormalization: Bool = false,
                recomputeBottleneck: Bool = false, checkpointLayers: Bool = false, recomputeStemAndTransitions: Bool = false) {
        self.sharedConcatenation = sharedConcatenation
        self.sharedNormalization = sharedNormalization
        self.fuseNormalization = fuseNormalization
        self.recomputeBottleneck = recomputeBottleneck
        self.checkpointLayers = checkpointLayers
        self.recomputeStemAndTransitions = recomputeStemAndTransitions
    }

    // MARK: Presets

    /// Everything autograd would keep is kept; each dense layer concatenates its inputs into a
    /// new tensor (`torch.cat` in the textbook): memory quadratic in depth.
    public static let naive = MemoryPolicy()
    /// torchvision's `memory_efficient=True`.
    public static let checkpoint = MemoryPolicy(checkpointLayers: true)
    /// Ablation rung: the block buffer alone; every layer keeps its own BN/ReLU output.
    public static let sharedConcatenation = MemoryPolicy(sharedConcatenation: true)
    /// Pleiss et al.: block buffer and shared, recomputed BN/ReLU storage; the bottleneck half kept.
    public static let shared = MemoryPolicy(sharedConcatenation: true, sharedNormalization: true)
    /// Pleiss et al.'s every saving: only the block buffers and per-channel batch statistics
    /// are kept.
    public static let minimal = MemoryPolicy(sharedConcatenation: true, sharedNormalization: true,
                                             recomputeBottleneck: true, checkpointLayers: true,
                                             recomputeStemAndTransitions: true)

    /// `minimal`, and the BN/ReLU outputs before each 1x1 conv and each transition's pooling
    /// never stored: read normalised by the next operation (`fuseNormalization`).
    public static let fused = MemoryPolicy(sharedConcatenation: true, sharedNormalization: true, fuseNormalization: true,
                                           recomputeBottleneck: true, checkpointLayers: true,
                                           recomputeStemAndTransitions: true)

    /// The named presets, by name.
    public static let presets: [(name: String, policy: MemoryPolicy)] = [
        ("naive", .naive), ("checkpoint", .checkpoint), ("shared-concat", .sharedConcatenation),
        ("shared", .shared), ("minimal", .minimal), ("fused", .fused),
    ]
    /// Every preset, in ladder order.
    public static var allPresets: [MemoryPolicy] { presets.map(\.policy) }
    /// The strategies of the framework (bench-memory's and summary's default).
    public static let standard: [MemoryPolicy] = [.naive, .checkpoint, .shared, .minimal, .fused]
    /// The ablation ladder of Scripts/ablation_ladder.py, one saving added per rung (the
    /// original authors' LuaTorch table), with what each rung adds.
    public static let ladder: [(policy: MemoryPolicy, adds: String)] = [
        (.naive, "naive (concatenation copies)"),
        (.checkpoint, "checkpoint (torchvision memory_efficient)"),
        (.sharedConcatenation, "+ shared concatenation buffer"),
        (.shared, "+ shared BN/ReLU storage, recomputed (Pleiss et al.)"),
        (.minimal, "+ bottleneck, stem and transitions recomputed (minimal)"),
        (.fused, "+ BN/ReLU never stored: normalised as the 1x1 conv or pooling reads it (fused)"),
    ]

    // MARK: Fields by name

    /// The fields, with the names the command lines use for them.
    public static let fields: [(name: String, keyPath: WritableKeyPath<MemoryPolicy, Bool>, saves: String)] = [
        ("shared-concatenation", \.sharedConcatenation, "one feature buffer per dense block, no concatenation copies"),
        ("shared-normalization", \.sharedNormalization, "one BN/ReLU storage per block, recomputed in backward"),
        ("fused-normalization", \.fuseNormalization,
         "BN/ReLU before 1x1 convs and transition pooling never stored: normalised as the next op reads it"),
        ("recompute-bottleneck", \.recomputeBottleneck, "bottleneck (1x1 conv, BN2/ReLU) recomputed in backward"),
        ("checkpoint-layers", \.checkpointLayers, "each layer a checkpointed segment (torchvision memory_efficient)"),
        ("recompute-stem-transitions", \.recomputeStemAndTransitions, "stem and transitions recomputed in backward"),
    ]

    /// The preset's name, or the fields that are on joined by '+' ("none" for no field on,
    /// which is `naive`).
    public var name: String {
        if let preset = MemoryPolicy.presets.first(where: { $0.policy == self }) { return preset.name }
        return MemoryPolicy.fields.filter { self[keyPath: $0.keyPath] }.map(\.name).joined(separator: "+")
    }

    /// A preset name, or presets and field names joined by '+' (`shared+recompute-bottleneck`).
    public init(named text: String) throws(ConfigurationError) {
        var policy = MemoryPolicy()
        let parts = text.split(separator: "+", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        for part in parts {
            if let preset = MemoryPolicy.presets.first(where: { $0.name == part }) {
                for field in MemoryPolicy.fields where preset.policy[keyPath: field.keyPath] {
                    policy[keyPath: field.keyPath] = true
                }
            } else if let field = MemoryPolicy.fields.first(where: { $0.name == part }) {
                policy[keyPath: field.keyPath] = true
            } else {
                throw .unknownMemoryPolicy(text, known: MemoryPolicy.presets.map(\.name) + MemoryPolicy.fields.map(\.name))
            }
        }
        self = policy
    }

    // MARK: Model families

    /// The part of this policy that `family` implements; the other fields are off. The one
    /// place that says what each family does with each saving:
    /// - DenseNet: with `sharedConcatenation` its blocks are the fused block of
    ///   DenseBlock+SharedStorage.swift, which honours `sharedNormalization`, `fuseNormalization`
    ///   (bottleneck layers) and `recomputeBottleneck` (and recomputes everything it does not keep, so
    ///   `checkpointLayers` adds nothing); without it, `checkpointLayers` checkpoints each
    ///   layer's bottleneck as torchvision does. `recomputeStemAndTransitions` always.
    /// - ResNet: `checkpointLayers` (residual blocks) and `recomputeStemAndTransitions` (the stem).
    /// - Dense MLP: `sharedConcatenation` (the block buffer) and `checkpointLayers` (each layer).
    /// - Plain MLP: nothing; it trains the same under every policy.
    public func honoured(by family: ModelFamily) -> MemoryPolicy {
        switch family {
        case .denseNet:
            return sharedConcatenation
                ? MemoryPolicy(sharedConcatenation: true, sharedNormalization: sharedNormalization,
                               fuseNormalization: fuseNormalization, recomputeBottleneck: recomputeBottleneck,
                               recomputeStemAndTransitions: recomputeStemAndTransitions)
                : MemoryPolicy(checkpointLayers: checkpointLayers, recomputeStemAndTransitions: recomputeStemAndTransitions)
        case .resNet:
            return MemoryPolicy(checkpointLayers: checkpointLayers, recomputeStemAndTransitions: recomputeStemAndTransitions)
        case .denseMLP:
            return MemoryPolicy(sharedConcatenation: sharedConcatenation, checkpointLayers: checkpointLayers)
        case .plainMLP:
            return MemoryPolicy()
        }
    }
}

/// The model families of the zoo, as far as memory policies are concerned.
public enum ModelFamily: String, Sendable, CaseIterable {
    case denseNet = "densenet", resNet = "resnet", denseMLP = "dense-mlp", plainMLP = "mlp"
}

extension MemoryPolicy: CustomStringConvertible {
    public var description: String { name }
}

/// Encoded as its name (bench-memory hands configurations to its child processes as JSON).
extension MemoryPolicy: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try MemoryPolicy(named: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

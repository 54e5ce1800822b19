/// How a DenseNet keeps what its backward pass needs. One flag, passed down the model, as in
/// the original shared-storage implementation; every strategy computes the same function.
public enum MemoryStrategy: String, CaseIterable, Sendable, Codable {
    /// Each layer concatenates its inputs into a new tensor and everything autograd would keep
    /// is kept: the quadratic-memory baseline (`torch.cat` in the textbook).
    case naive
    /// torchvision's `memory_efficient=True`: concat → BN → ReLU → 1x1 conv is a checkpointed
    /// segment, recomputed in backward.
    case checkpoint
    /// Pleiss et al. 2017: the block owns one feature buffer sized to its final width (no layer
    /// copies the concatenation) and one storage for the BN/ReLU output shared by all its layers,
    /// recomputed in backward; the bottleneck half (conv1 and BN2 outputs) is kept.
    case shared
    /// Beyond the paper: only the block buffers and per-channel batch statistics are kept;
    /// everything else in a layer is recomputed in backward.
    case minimal
    /// Ablation only (the "shared concat output" rung of the original authors' ladder): the
    /// block's feature buffer removes the concatenation copies, but every layer keeps its own
    /// BN/ReLU output (not shared, not recomputed) and its bottleneck half.
    case sharedConcatenation = "shared-concat"

    /// The four strategies of the framework; `sharedConcatenation` is an ablation step.
    public static let standard: [MemoryStrategy] = [.naive, .checkpoint, .shared, .minimal]

    /// Whether the block runs as one fused operation over a shared feature buffer.
    public var usesSharedBuffer: Bool { self == .shared || self == .minimal || self == .sharedConcatenation }
}

/// The shape of one example's features, `(C, H, W)`, without the batch dimension.
///
/// Image models use all three; the fully connected `dense-mlp` uses `(F, 1, 1)`. The runtime keeps
/// activations channel-major `(C, N, H, W)`; this type only names the per-example extents.
public struct FeatureShape: Hashable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// A flat feature vector of `features` values, `(F, 1, 1)`.
    public init(features: Int) {
        self.init(channels: features, height: 1, width: 1)
    }

    /// Number of values per example, `C·H·W`.
    public var elementCount: Int { channels * height * width }

    /// Whether every extent is at least 1.
    public var isPositive: Bool { channels >= 1 && height >= 1 && width >= 1 }

    /// `CxHxW`, the form `--input` takes (e.g. `3x224x224`).
    public var description: String { "\(channels)x\(height)x\(width)" }

    /// Parses `CxHxW` (e.g. `3x32x32`) or a single `F` (read as `(F, 1, 1)`). Returns nil for
    /// anything else; callers turn that into a `ConfigurationError` with a hint.
    public init?(parsing text: String) {
        let parts = text.lowercased().filter { !$0.isWhitespace }
            .split(separator: "x", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { Int($0) }
        guard numbers.count == parts.count else { return nil }
        switch numbers.count {
        case 1: self.init(features: numbers[0])
        case 3: self.init(channels: numbers[0], height: numbers[1], width: numbers[2])
        default: return nil
        }
    }
}

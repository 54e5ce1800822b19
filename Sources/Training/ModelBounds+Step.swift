import DenseNetModels
import Foundation
import Runtime

/// A lower bound of one training step's tensor memory, in closed form per block (O(blocks),
/// microseconds, nothing built), so that a step that cannot fit in this machine's physical
/// memory is refused with the figure before the planner builds the model or a run allocates
/// (issue 11, class 3: `densenet summary --model densenet-bc-100000-12`, `bench-memory --depths
/// 100000`, `densenet train --input 1x100000x100000`).
///
/// The bound counts what every memory policy must hold at once during a step (the planner's
/// `MemoryPlan` counts the same categories exactly):
/// - the parameters (`ModelBounds.parameterLowerBound`), their gradients and the optimizer's
///   state: `(2 + statesPerParameter) × 4` bytes per parameter;
/// - the batch of inputs, `batch × C × H × W × 4`;
/// - for a DenseNet, the largest block output (the concatenation a transition or the head reads
///   whole, shared storage or not): `batch × (c0 + n·k) × H_b × W_b × 4`, with each halving of
///   the resolution (stem, transitions) rounded down, below the true size.
public struct StepLowerBound: Equatable, Sendable {
    public var parameterBytes: Int
    /// Parameters, gradients and optimizer state.
    public var modelBytes: Int
    public var inputBytes: Int
    public var largestActivationBytes: Int

    public var totalBytes: Int { modelBytes + inputBytes + largestActivationBytes }
}

extension ModelBounds {
    /// The lower bound of one step of `model` at `batch` with `optimizerStates` state tensors
    /// per parameter (0 plain SGD, 1 momentum, 2 Adam); `what` names the numbers in an overflow.
    public static func stepLowerBound(_ model: ModelConfiguration, batch: Int, optimizerStates: Int,
                                      what: String) throws -> StepLowerBound {
        let parameters = try parameterLowerBound(model, what: what)
        let parameterBytes = try CheckedSize.bytes(elements: parameters, what: what)
        let modelBytes = try CheckedSize.product(parameterBytes, 2 + max(0, optimizerStates), what: what)
        let s = model.inputShape
        let inputBytes = try CheckedSize.bytes(shape: [batch, s.channels, s.height, s.width], what: what)
        var largest = 0
        if case .denseNet(let c) = model {
            var (h, w) = (s.height, s.width)
            if c.stem == .imagenet { (h, w) = (h / 4, w / 4) }
            var width = c.initialFeatures
            for (b, layers) in c.blockConfig.enumerated() {
                width = try CheckedSize.sum(width, CheckedSize.product(layers, c.growthRate, what: what), what: what)
                let bytes = try CheckedSize.bytes(shape: [batch, width, h, w], what: what)
                largest = max(largest, bytes)
                if b + 1 < c.blockConfig.count {
                    width = try compressed(width, compression: c.compression, what: what)
                    (h, w) = (h / 2, w / 2)
                }
            }
        }
        _ = try CheckedSize.sum([modelBytes, inputBytes, largest], what: what)
        return StepLowerBound(parameterBytes: parameterBytes, modelBytes: modelBytes, inputBytes: inputBytes,
                              largestActivationBytes: largest)
    }

    /// Refuses a step of `model` at `batch` whose lower bound exceeds this machine's physical
    /// memory, or overflows, before anything is built. `what` names the user's numbers, e.g.
    /// "--model densenet-bc-100000-12 at --batch 64".
    public static func checkStep(_ model: ModelConfiguration, batch: Int, optimizerStates: Int, what: String) throws {
        let bound = try stepLowerBound(model, batch: batch, optimizerStates: optimizerStates, what: what)
        let limit = CheckedSize.physicalMemoryBytes
        guard bound.totalBytes <= limit else {
            throw SizeError.tooLarge(
                what: "\(what): one training step needs at least \(gib(bound.totalBytes)) (parameters, gradients and"
                      + " optimizer state \(gib(bound.modelBytes)), input batch \(gib(bound.inputBytes)), largest"
                      + " activation \(gib(bound.largestActivationBytes)))",
                value: bound.totalBytes, limit: limit, bound: "this machine's physical memory in bytes (\(gib(limit)))")
        }
    }

    /// ⌊θ·c⌋ as the configurations' `compressed`, refused where the product leaves `Int`'s
    /// range (where `Int(_:)` would trap).
    static func compressed(_ channels: Int, compression: Double, what: String) throws -> Int {
        try CheckedSize.integer(compression * Double(channels), what: what)
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / 1_073_741_824) }
}

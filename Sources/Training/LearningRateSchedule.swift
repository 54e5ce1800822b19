import Foundation
import Runtime

/// The learning rate of every optimizer step: an optional linear warm-up, then a constant
/// rate, step decay at epoch milestones (PyTorch's `MultiStepLR`, the DenseNet paper's ÷10 at
/// 50 % and 75 % of training), or cosine annealing to zero (`CosineAnnealingLR` per step,
/// `eta_min = 0`).
///
/// A pure function of the step index, so a resumed run needs only the step count to continue
/// with the same rates.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        case constant, step, cosine
    }

    public var kind: Kind
    /// The rate after warm-up (and before any decay).
    public var baseRate: Float
    /// Warm-up length in epochs (may be fractional): step s < W gets baseRate·(s + 1)/W.
    public var warmupEpochs: Double
    /// `.step`: 0-based epochs from which the rate is multiplied by `gamma` once more.
    public var milestones: [Int]
    public var gamma: Float
    public var epochs: Int
    public var stepsPerEpoch: Int

    public init(kind: Kind, baseRate: Float, epochs: Int, stepsPerEpoch: Int, warmupEpochs: Double = 0,
                milestones: [Int]? = nil, gamma: Float = 0.1) {
        precondition(epochs >= 1 && stepsPerEpoch >= 1,
                     "LearningRateSchedule: epochs \(epochs) and steps per epoch \(stepsPerEpoch) must be positive")
        precondition(warmupEpochs >= 0, "LearningRateSchedule: negative warm-up \(warmupEpochs)")
        self.kind = kind
        self.baseRate = baseRate
        self.epochs = epochs
        self.stepsPerEpoch = stepsPerEpoch
        self.warmupEpochs = warmupEpochs
        self.milestones = milestones ?? LearningRateSchedule.defaultMilestones(epochs: epochs)
        self.gamma = gamma
    }

    /// ⌊E/2⌋ and ⌊3E/4⌋ (Huang et al. 2017: "divided by 10 at 50 % and 75 % of the total number
    /// of training epochs"), without 0 and duplicates.
    public static func defaultMilestones(epochs: Int) -> [Int] {
        var out = [Int]()
        // ⌊3E/4⌋ as 3⌊E/4⌋ + ⌊3(E mod 4)/4⌋: no overflow for an absurd E from a file.
        for m in [epochs / 2, epochs / 4 * 3 + epochs % 4 * 3 / 4] where m > 0 && !out.contains(m) { out.append(m) }
        return out
    }

    /// Saturates at `Int.max` (an absurd `epochs` from a file or option must not trap here;
    /// `TrainingProgress.validate` refuses such runs before they train).
    public var totalSteps: Int {
        let (t, overflow) = epochs.multipliedReportingOverflow(by: stepsPerEpoch)
        return overflow ? Int.max : t
    }
    public var warmupSteps: Int {
        (try? CheckedSize.integer((warmupEpochs * Double(stepsPerEpoch)).rounded(), what: "warm-up steps")) ?? Int.max
    }

    /// The rate of 0-based optimizer step `step`.
    public func rate(atStep step: Int) -> Float {
        precondition(step >= 0, "LearningRateSchedule.rate: negative step \(step) (TrainingProgress.validate refuses it)")
        let w = warmupSteps
        if step < w { return Float(Double(baseRate) * (Double(step) + 1) / Double(w)) }
        switch kind {
        case .constant:
            return baseRate
        case .step:
            let epoch = step / stepsPerEpoch
            let drops = milestones.filter { epoch >= $0 }.count
            return Float(Double(baseRate) * pow(Double(gamma), Double(drops)))
        case .cosine:
            let span = max(totalSteps - w, 1)
            let t = Double(min(max(step - w, 0), span)) / Double(span)
            return Float(Double(baseRate) * 0.5 * (1 + cos(Double.pi * t)))
        }
    }
}

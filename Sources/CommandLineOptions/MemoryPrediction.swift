import DenseNetModels
import Foundation
import Runtime
import Training

/// The command lines' only ways to name a memory strategy and to ask the planner
/// (`MemoryPolicy`, `MemoryPlanner` in Sources/DenseNetModels): `densenet train`, `summary`
/// and `bench-memory` all go through here, so the strategy's type and the planner can change
/// in one place.
public enum MemoryPrediction {
    /// The memory policy named `name`: a preset (`naive`, `checkpoint`, `shared`, `minimal`,
    /// the ablation rung `shared-concat`) or presets and fields joined by '+'
    /// (`shared+recompute-bottleneck`), or an error for `option` that lists them.
    public static func strategy(named name: String, option: String = "--strategy") throws -> MemoryPolicy {
        do { return try MemoryPolicy(named: name) } catch {
            throw TrainingError.invalidOption(option, reason: "\(error)")
        }
    }

    /// A comma-separated list of strategy names, in its order.
    public static func strategies(_ list: String, option: String = "--strategies") throws -> [MemoryPolicy] {
        let names = list.split(separator: ",", omittingEmptySubsequences: false)
        guard !list.isEmpty else { throw TrainingError.invalidOption(option, reason: "names no strategy") }
        return try names.map { try strategy(named: String($0), option: option) }
    }

    /// The optimizer state the planner counts for `settings`: none (SGD without momentum),
    /// one buffer per parameter (SGD with momentum) or two (Adam), as `SGD` and `Adam` allocate.
    public static func plannedOptimizer(_ settings: OptimizerSettings) -> PlannedOptimizer {
        switch settings.kind {
        case .adam: return .adam
        case .sgd: return settings.momentum > 0 ? .sgdMomentum : .sgd
        }
    }

    /// Refuses a model and batch whose step sizes would overflow 64-bit arithmetic
    /// (`ModelBounds.checkStep`): any input size that does not is described and planned.
    public static func checkSizes(_ model: ModelConfiguration, batch: Int) throws {
        try ModelBounds.checkStep(model, batch: batch)
    }

    /// The planner's prediction of one training step of `model` at `batch` under `strategy`, on
    /// `threads` threads, with `optimizer`'s state (default: SGD with momentum, as bench-memory
    /// trains).
    public static func plan(_ model: ModelConfiguration, batch: Int, strategy: MemoryPolicy,
                            threads: Int = Parallel.threadCount,
                            optimizer: OptimizerSettings = OptimizerSettings()) throws -> MemoryPlan {
        guard batch >= 1 else { throw TrainingError.invalidOption("--batch", reason: "\(batch) must be at least 1") }
        guard threads >= 1 else { throw TrainingError.invalidOption("--threads", reason: "\(threads) must be at least 1") }
        try checkSizes(model, batch: batch)
        return try MemoryPlanner.plan(model, batch: batch, policy: strategy, threads: threads,
                                      optimizer: plannedOptimizer(optimizer))
    }
}

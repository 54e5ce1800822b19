import DenseNetModels
import Foundation
import Runtime
import Training

/// The command lines' only ways to name a memory strategy and to ask the planner
/// (`MemoryStrategy`, `MemoryPlanner` in Sources/DenseNetModels): `densenet train`, `summary`
/// and `bench-memory` all go through here, so the strategy's type and the planner can change
/// in one place.
public enum MemoryPrediction {
    /// The strategy named `name` (`naive`, `checkpoint`, `shared`, `minimal`, and the ablation
    /// step `shared-concat`), or an error for `option` that lists them.
    public static func strategy(named name: String, option: String = "--strategy") throws -> MemoryStrategy {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard let strategy = MemoryStrategy(rawValue: trimmed.lowercased()) else {
            throw TrainingError.invalidOption(option, reason: "'\(trimmed)' is not one of "
                                              + MemoryStrategy.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return strategy
    }

    /// A comma-separated list of strategy names, in its order.
    public static func strategies(_ list: String, option: String = "--strategies") throws -> [MemoryStrategy] {
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

    /// Whether the planner models `model` (it replays the dense MLP's blocks, not the plain `mlp`).
    public static func canPlan(_ model: ModelConfiguration) -> Bool {
        if case .denseMLP(let c) = model { return c.denseConnections }
        return true
    }

    /// The planner's prediction of one training step of `model` at `batch` under `strategy`, on
    /// `threads` threads, with `optimizer`'s state (default: SGD with momentum, as bench-memory
    /// trains). An error for a model the planner does not model (`canPlan`).
    public static func plan(_ model: ModelConfiguration, batch: Int, strategy: MemoryStrategy,
                            threads: Int = Parallel.threadCount,
                            optimizer: OptimizerSettings = OptimizerSettings()) throws -> MemoryPlan {
        guard canPlan(model) else {
            throw TrainingError.invalidOption("--max-memory", reason: "the memory planner does not model \(model.name)"
                                              + " (a plain MLP): it has no predicted peak; leave --max-memory out")
        }
        guard batch >= 1 else { throw TrainingError.invalidOption("--batch", reason: "\(batch) must be at least 1") }
        guard threads >= 1 else { throw TrainingError.invalidOption("--threads", reason: "\(threads) must be at least 1") }
        return try MemoryPlanner.plan(model, batch: batch, strategy: strategy, threads: threads,
                                      optimizer: plannedOptimizer(optimizer))
    }
}

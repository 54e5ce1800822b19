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

    /// Refuses a step of `model` at `batch` that cannot fit in this machine's physical memory
    /// (`ModelBounds.checkStep`: parameters, gradients, optimizer state, the batch and the
    /// largest activation, in checked arithmetic, in microseconds), before the planner builds
    /// anything: `summary --batch 1000000000000` or `bench-memory --depths 100000` are refused
    /// with the figure instead of planning for minutes.
    public static func checkStep(_ model: ModelConfiguration, batch: Int,
                                 optimizer: OptimizerSettings = OptimizerSettings()) throws {
        guard batch >= 1 else { throw TrainingError.invalidOption("--batch", reason: "\(batch) must be at least 1") }
        try ModelBounds.checkStep(model, batch: batch, optimizerStates: optimizer.statesPerParameter,
                                  what: "--batch \(batch) with \(model.name) (input \(model.inputShape))")
    }

    /// Refuses a training batch of `batch` examples that a batch norm of `model` cannot
    /// normalise (one value per channel: `BatchNormPlan`, `Architecture.minimumTrainingBatch`),
    /// with PyTorch's message, as `densenet train` does: bench-memory checks this before it
    /// starts a child that would die of it.
    public static func checkTrainingBatch(_ model: ModelConfiguration, batch: Int) throws {
        _ = try BatchNormPlan.check(model: model, exampleCount: batch, batchSize: batch)
    }

    /// The planner's prediction of one training step of `model` at `batch` under `strategy`, on
    /// `threads` threads, with `optimizer`'s state (default: SGD with momentum, as bench-memory
    /// trains).
    public static func plan(_ model: ModelConfiguration, batch: Int, strategy: MemoryPolicy,
                            threads: Int = Parallel.threadCount,
                            optimizer: OptimizerSettings = OptimizerSettings()) throws -> MemoryPlan {
        guard threads >= 1 else { throw TrainingError.invalidOption("--threads", reason: "\(threads) must be at least 1") }
        try checkStep(model, batch: batch, optimizer: optimizer)
        return try MemoryPlanner.plan(model, batch: batch, policy: strategy, threads: threads,
                                      optimizer: optimizer.planned)
    }
}

import Autograd
import Kernels
import NeuralLayers
import Runtime

/// The optimizer whose state a training step keeps: none (plain SGD), one buffer per parameter
/// (SGD with momentum, the default of bench-memory and `densenet train`), or two (Adam).
public enum PlannedOptimizer: String, CaseIterable, Sendable, Codable {
    case sgd, sgdMomentum = "sgd-momentum", adam

    /// Optimizer-state tensors per parameter tensor.
    public var statesPerParameter: Int {
        switch self {
        case .sgd: return 0
        case .sgdMomentum: return 1
        case .adam: return 2
        }
    }
}

/// The predicted tensor memory of one training step, in the bytes `Memory` counts.
///
/// `peakBytes` is what `Memory.peak` reads after `Memory.resetPeak()` with model, optimizer
/// and one batch of data allocated, through zero grads, forward, loss, backward and the
/// optimizer step (bench-memory's `peak_tensor_mib`). The first four parts are that baseline;
/// `activationBytes` is what the forward pass leaves for backward.
public struct MemoryPlan: Hashable, Sendable, Codable {
    public var model: String
    public var policy: MemoryPolicy
    public var batch: Int
    public var threads: Int
    public var optimizer: PlannedOptimizer
    /// Weights and batch-norm running statistics (category `.parameters`).
    public var parameterBytes: Int
    /// One gradient per trainable tensor.
    public var gradientBytes: Int
    public var optimizerStateBytes: Int
    /// The batch of input data.
    public var inputBytes: Int
    /// Activations (and their batch statistics) alive at the end of the forward pass, loss
    /// included, beyond the input: what is kept for backward.
    public var activationBytes: Int
    /// Peak of live scratch bytes (workspaces, partial sums, recompute buffers) in the step.
    public var peakScratchBytes: Int
    /// Peak of live tensor bytes over the forward pass alone (baseline included).
    public var forwardPeakBytes: Int
    /// Predicted `Memory.peak`: peak live tensor bytes of the step, baseline included, with the
    /// threads of each kernel call holding their column tiles at the same time (an upper bound).
    public var peakBytes: Int
    /// The peak if each kernel call's threads held their tiles one after another, as happens
    /// when a call is too short for the second thread to start in time (a lower bound). The
    /// runtime's peak lies between this and `peakBytes`; both agree, exactly, on one thread.
    public var sequentialPeakBytes: Int
    /// Live bytes per category (`MemoryCategory.description`) at the moment of the peak.
    public var bytesAtPeak: [String: Int]
    /// What runs at the peak, e.g. "backward features.denseblock1.denselayer2.conv2".
    public var peakPhase: String
    /// FLOPs of the step's matrix products and convolutions, and the most their splits across
    /// `threads` threads let them speed up over one thread (`DryRun.productSpeedupBound`).
    public var productFLOPs: Double = 0
    public var productSpeedupBound: Double = 1

    /// Parameters, gradients, optimizer state and input: live before the step starts.
    public var baselineBytes: Int { parameterBytes + gradientBytes + optimizerStateBytes + inputBytes }
}

/// Predicts the tensor memory of a training step without allocating any tensor.
///
/// The planner runs the real step (`TrainingStep`: model construction, forward, loss, autograd
/// backward with its recomputes, optimizer step) in a dry run of the runtime
/// (Runtime/DryRun.swift): every storage is counted by the runtime's own ledger with the
/// runtime's own size function and freed when the real code drops it, and each kernel counts
/// its scratch through the size query its tiling shares (`Conv2d+Workspace.swift`,
/// `Gemm.multiplyScratchBytes`). So the prediction is the runtime's count, not an estimate:
/// exact on one thread; on several, whether the threads of one kernel call hold their column
/// tiles at the same time depends on timing, so the plan gives the upper bound (`peakBytes`)
/// and the lower one (`sequentialPeakBytes`).
public enum MemoryPlanner {
    /// The plan of one training step of `configuration` at batch `batch` under `policy`, with
    /// kernels on `threads` threads (`Parallel.threadCount` by default; it sets how the kernels
    /// split their work and so their scratch). Classification models are trained with
    /// cross-entropy, the MLPs with mean squared error, as bench-memory does. Leaves the weight
    /// and dropout seed streams as it found them.
    public static func plan(_ configuration: ModelConfiguration, batch: Int, policy: MemoryPolicy,
                            threads: Int = Parallel.threadCount,
                            optimizer: PlannedOptimizer = .sgdMomentum) throws(ConfigurationError) -> MemoryPlan {
        precondition(batch >= 1, "MemoryPlanner.plan: batch \(batch) must be at least 1")
        precondition(threads >= 1, "MemoryPlanner.plan: threads \(threads) must be at least 1")
        _ = try Architecture(configuration)   // validates before anything runs
        let step = dryRun(configuration, batch: batch, policy: policy, threads: threads, optimizer: optimizer,
                          concurrentTiles: true)
        let sequential = threads == 1 ? step
            : dryRun(configuration, batch: batch, policy: policy, threads: threads, optimizer: optimizer,
                     concurrentTiles: false)
        let ledger = step.ledger
        var atPeak = [String: Int]()
        for c in MemoryCategory.allCases { atPeak[c.description] = ledger.activeAtPeak[c.rawValue] }
        return MemoryPlan(
            model: configuration.name, policy: policy, batch: batch, threads: threads, optimizer: optimizer,
            parameterBytes: step.baseline[MemoryCategory.parameters.rawValue],
            gradientBytes: step.baseline[MemoryCategory.gradients.rawValue],
            optimizerStateBytes: step.baseline[MemoryCategory.optimizerState.rawValue],
            inputBytes: step.baseline[MemoryCategory.activations.rawValue],
            activationBytes: step.activations,
            peakScratchBytes: ledger.peak(.scratch),
            forwardPeakBytes: step.forwardPeak, peakBytes: ledger.peak, sequentialPeakBytes: sequential.ledger.peak,
            bytesAtPeak: atPeak, peakPhase: ledger.phaseAtPeak,
            productFLOPs: step.productFLOPs, productSpeedupBound: step.productSpeedupBound)
    }

    /// Builds and runs one `TrainingStep` in a dry run; returns its ledger, the baseline (model,
    /// optimizer and data) per category, the activations kept after the forward pass beyond the
    /// input, and the peak of the forward pass.
    private static func dryRun(_ configuration: ModelConfiguration, batch: Int, policy: MemoryPolicy, threads: Int,
                               optimizer: PlannedOptimizer, concurrentTiles: Bool)
        -> (ledger: MemoryLedger, baseline: [Int], activations: Int, forwardPeak: Int, productFLOPs: Double,
            productSpeedupBound: Double) {
        let (weightSeed, dropoutSeed) = (Initialization.seed, Autograd.dropoutSeed)
        defer { (Initialization.seed, Autograd.dropoutSeed) = (weightSeed, dropoutSeed) }
        let ((baseline, activations, forwardPeak), dryRun) = DryRun.run(threads: threads,
                                                                        concurrentTiles: concurrentTiles) { dryRun in
            let ledger = dryRun.ledger
            // Validated by the caller: the only error is a configuration error it already ruled out.
            guard let step = try? TrainingStep(configuration, batch: batch, policy: policy, optimizer: optimizer) else {
                preconditionFailure("MemoryPlanner: \(configuration.name) failed to build after validating")
            }
            let baseline = ledger.activeByCategory
            ledger.resetPeak()
            var activations = 0, forwardPeak = 0
            step.run(afterForward: {
                activations = ledger.active(.activations) - baseline[MemoryCategory.activations.rawValue]
                forwardPeak = ledger.peak
            })
            return (baseline, activations, forwardPeak)
        }
        return (dryRun.ledger, baseline, activations, forwardPeak, dryRun.productFLOPs, dryRun.productSpeedupBound)
    }

    /// Plans for each of `policies` (the four standard ones by default), in that order.
    public static func plans(_ configuration: ModelConfiguration, batch: Int,
                             policies: [MemoryPolicy] = MemoryPolicy.standard, threads: Int = Parallel.threadCount,
                             optimizer: PlannedOptimizer = .sgdMomentum) throws(ConfigurationError) -> [MemoryPlan] {
        var out = [MemoryPlan]()
        for p in policies {
            out.append(try plan(configuration, batch: batch, policy: p, threads: threads, optimizer: optimizer))
        }
        return out
    }

    /// The predicted `Memory.peak` of a training step (`plan(...).peakBytes`), for limits such
    /// as `densenet train --max-memory`: checked before anything is allocated.
    public static func predictedPeakBytes(model configuration: ModelConfiguration, batch: Int, policy: MemoryPolicy,
                                          optimizer: PlannedOptimizer = .sgdMomentum,
                                          threads: Int = Parallel.threadCount) throws(ConfigurationError) -> Int {
        try plan(configuration, batch: batch, policy: policy, threads: threads, optimizer: optimizer).peakBytes
    }
}

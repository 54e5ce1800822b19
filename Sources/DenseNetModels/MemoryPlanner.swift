import Kernels
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
    public var strategy: MemoryStrategy
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

    /// Parameters, gradients, optimizer state and input: live before the step starts.
    public var baselineBytes: Int { parameterBytes + gradientBytes + optimizerStateBytes + inputBytes }
}

/// Predicts the tensor memory of a training step without allocating any tensor.
///
/// The planner replays the step's allocations in order: the forward pass of the model under
/// its strategy (what each operation allocates, what its backward closure keeps alive, which
/// locals and temporaries die when), the loss, then `Autograd.run` in descending node order
/// (a zero-filled gradient buffer per non-leaf input the first time a consumer needs one,
/// freed with the node's saved tensors once its own backward has run; checkpointed segments
/// re-run and back-propagated inside their node's backward). Every storage is sized by
/// `Memory.byteCount(elements:)`, the runtime's own size function, and each kernel's scratch
/// by its size query (`Conv2d.forwardScratchBytes`, `Conv2d.backwardScratchBytes`,
/// `Gemm.multiplyScratchBytes`, `Pooling.maxForwardScratchBytes`). So the prediction is the
/// runtime's count, not an estimate: exact on one thread; on several, whether the threads of
/// one kernel call hold their column tiles at the same time depends on timing, so the plan
/// gives the upper bound (`peakBytes`) and the lower one (`sequentialPeakBytes`).
public enum MemoryPlanner {
    /// The plan of one training step of `configuration` at batch `batch` under `strategy`, with
    /// kernels on `threads` threads (`Parallel.threadCount` by default; it sets how the kernels
    /// split their work and so their scratch). Classification models are trained with
    /// cross-entropy, `dense-mlp` with mean squared error, as bench-memory does.
    public static func plan(_ configuration: ModelConfiguration, batch: Int, strategy: MemoryStrategy,
                            threads: Int = Parallel.threadCount,
                            optimizer: PlannedOptimizer = .sgdMomentum) throws(ConfigurationError) -> MemoryPlan {
        precondition(batch >= 1, "MemoryPlanner.plan: batch \(batch) must be at least 1")
        precondition(threads >= 1, "MemoryPlanner.plan: threads \(threads) must be at least 1")
        let architecture = try Architecture(configuration)
        let step = simulate(configuration, architecture, batch: batch, strategy: strategy, threads: threads,
                            optimizer: optimizer, concurrentTiles: true)
        let sequential = threads == 1 ? step
            : simulate(configuration, architecture, batch: batch, strategy: strategy, threads: threads,
                       optimizer: optimizer, concurrentTiles: false)
        let sim = step.sim
        var atPeak = [String: Int]()
        for c in MemoryCategory.allCases { atPeak[c.description] = sim.activeAtPeak[c.rawValue] }
        return MemoryPlan(
            model: configuration.name, strategy: strategy, batch: batch, threads: threads, optimizer: optimizer,
            parameterBytes: step.baseline[MemoryCategory.parameters.rawValue],
            gradientBytes: step.baseline[MemoryCategory.gradients.rawValue],
            optimizerStateBytes: step.baseline[MemoryCategory.optimizerState.rawValue],
            inputBytes: step.baseline[MemoryCategory.activations.rawValue],
            activationBytes: step.activations,
            peakScratchBytes: sim.peakByCategory[MemoryCategory.scratch.rawValue],
            forwardPeakBytes: step.forwardPeak, peakBytes: sim.peak, sequentialPeakBytes: sequential.sim.peak,
            bytesAtPeak: atPeak, peakPhase: sim.peakPhase)
    }

    /// Replays one step: the baseline (model, optimizer, data), then
    /// `loss(model(Variable(images))).backward()` and the optimizer step (which allocates nothing).
    private static func simulate(_ configuration: ModelConfiguration, _ architecture: Architecture, batch: Int,
                                 strategy: MemoryStrategy, threads: Int, optimizer: PlannedOptimizer,
                                 concurrentTiles: Bool) -> (sim: PlanSimulator, baseline: [Int], activations: Int, forwardPeak: Int) {
        let sim = PlanSimulator()
        for tensor in parameterTensors(architecture) {
            _ = sim.allocate(tensor.elements, .parameters)
            guard tensor.trainable else { continue }
            _ = sim.allocate(tensor.elements, .gradients)
            for _ in 0..<optimizer.statesPerParameter { _ = sim.allocate(tensor.elements, .optimizerState) }
        }
        let shape = configuration.inputShape
        let inputShape: [Int]
        if case .denseMLP = configuration { inputShape = [shape.channels, batch] }
        else { inputShape = [shape.channels, batch, shape.height, shape.width] }
        let images = sim.allocate(inputShape.reduce(1, *), .activations)
        let baseline = sim.active
        sim.resetPeak()

        let engine = PlanAutograd(sim, threads: threads, concurrentTiles: concurrentTiles)
        let x = engine.keep(PlanVariable(buffer: images, shape: inputShape, node: nil))
        let output: PlanVariable
        let loss: PlanVariable
        switch configuration {
        case .denseNet(let c):
            output = engine.denseNet(c, architecture, strategy: strategy, x)
            loss = engine.crossEntropy(output)
        case .resNet(let c):
            output = engine.resNet(c, architecture, strategy: strategy, x)
            loss = engine.crossEntropy(output)
        case .denseMLP(let c):
            output = engine.denseMLP(c, architecture, strategy: strategy, x)
            loss = engine.meanSquaredError(output)
        }
        engine.drop(output)
        let activations = sim.active(.activations) - baseline[MemoryCategory.activations.rawValue]
        let forwardPeak = sim.peak
        let seed = sim.allocate(1, .activations)
        if let root = loss.node { engine.run(from: root, gradient: seed) }
        sim.release(seed)
        engine.drop(loss)
        engine.drop(x)
        return (sim, baseline, activations, forwardPeak)
    }

    /// Plans for each of `strategies` (the four standard ones by default), in that order.
    public static func plans(_ configuration: ModelConfiguration, batch: Int,
                             strategies: [MemoryStrategy] = MemoryStrategy.standard, threads: Int = Parallel.threadCount,
                             optimizer: PlannedOptimizer = .sgdMomentum) throws(ConfigurationError) -> [MemoryPlan] {
        var out = [MemoryPlan]()
        for s in strategies {
            out.append(try plan(configuration, batch: batch, strategy: s, threads: threads, optimizer: optimizer))
        }
        return out
    }

    /// The predicted `Memory.peak` of a training step (`plan(...).peakBytes`), for limits such
    /// as `densenet train --max-memory`: checked before anything is allocated.
    public static func predictedPeakBytes(model configuration: ModelConfiguration, batch: Int, strategy: MemoryStrategy,
                                          optimizer: PlannedOptimizer = .sgdMomentum,
                                          threads: Int = Parallel.threadCount) throws(ConfigurationError) -> Int {
        try plan(configuration, batch: batch, strategy: strategy, threads: threads, optimizer: optimizer).peakBytes
    }

    /// Every tensor a built model allocates in `.parameters`, each its own storage: weights and
    /// biases (trainable: with a gradient and optimizer state), BN running mean and variance.
    static func parameterTensors(_ a: Architecture) -> [(elements: Int, trainable: Bool)] {
        a.leaves.flatMap { layer -> [(elements: Int, trainable: Bool)] in
            switch layer.kind {
            case .convolution(let c):
                return [(c.outChannels * c.inChannels * c.kernel * c.kernel, true)] + (c.bias ? [(c.outChannels, true)] : [])
            case .batchNorm(let channels):
                return [(channels, true), (channels, true), (channels, false), (channels, false)]
            case .linear(let l):
                return [(l.outFeatures * l.inFeatures, true)] + (l.bias ? [(l.outFeatures, true)] : [])
            default:
                return []
            }
        }
    }
}

import Autograd
import NeuralLayers
import Runtime

/// One training step of a zoo model on synthetic data: zero the gradients, forward, loss
/// (cross-entropy, or mean squared error for the MLPs), autograd backward (recomputing what the
/// memory policy did not keep) and the optimizer step.
///
/// The one step both sides of the memory account run: bench-memory times and measures it
/// (BenchmarkSupport/TrainingStepBenchmark.swift), and `MemoryPlanner` runs it in a dry run
/// (Runtime/DryRun.swift) to predict the same `Memory.peak` without allocating it.
public final class TrainingStep {
    public let configuration: ModelConfiguration
    public let model: any Network
    public let optimizer: any Optimizer
    /// The batch: (C, N, H, W), or (F, N) for the MLPs.
    public let inputs: Tensor
    let labels: [Int32]
    let targets: [Float]

    /// Builds the model under `policy` (weights from `Initialization.seed` = 42), its optimizer
    /// (SGD with momentum 0.9 and weight decay 1e-4 for `.sgdMomentum`, as `densenet train`'s
    /// default) and one seeded batch of `batch` synthetic examples.
    public init(_ configuration: ModelConfiguration, batch: Int, policy: MemoryPolicy,
                optimizer: PlannedOptimizer = .sgdMomentum) throws(ConfigurationError) {
        precondition(batch >= 1, "TrainingStep: batch \(batch) must be at least 1")
        self.configuration = configuration
        Initialization.seed = 42
        model = try ModelFactory.build(configuration, policy: policy)
        let parameters = model.parameters
        switch optimizer {
        case .sgd: self.optimizer = SGD(parameters: parameters, learningRate: 0.01)
        case .sgdMomentum: self.optimizer = SGD(parameters: parameters, learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4)
        case .adam: self.optimizer = Adam(parameters: parameters, learningRate: 1e-3, weightDecay: 1e-4)
        }
        inputs = Tensor.randomNormal(configuration.batchShape(batch), seed: 3)
        var rng = SeededGenerator(seed: 4)
        let classes = UInt64(configuration.outputCount)
        labels = (0..<batch).map { _ in Int32(rng.next() % classes) }
        targets = (0..<batch).map { _ in rng.nextNormal() }
    }

    /// Runs the step. `afterForward` is called once the loss exists, before the backward pass;
    /// `beforeUpdate` after the backward pass, before the optimizer step (a data-parallel step
    /// waits for its averaged gradients there).
    public func run(afterForward: () -> Void = {}, beforeUpdate: () -> Void = {}) {
        optimizer.zeroGradients()
        // The output is a temporary: once the loss's backward has run, nothing holds the logits.
        let loss = self.loss(model(Variable(inputs)))
        afterForward()
        loss.backward()
        beforeUpdate()
        DryRun.current?.enter("optimizer step")
        optimizer.step()
    }

    private func loss(_ output: Variable) -> Variable {
        DryRun.current?.enter("loss")
        return configuration.isRegression ? Functional.meanSquaredError(output, targets: targets)
                                          : Functional.crossEntropy(output, labels: labels)
    }
}

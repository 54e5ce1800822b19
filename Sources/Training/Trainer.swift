import Autograd
import Datasets
import DenseNetModels
import Foundation
import Kernels
import NeuralLayers
import Runtime

/// The numbers of one optimizer step.
public struct StepMetrics: Sendable, Equatable {
    /// Mean cross-entropy of the batch, before the update.
    public var loss: Float
    public var correct: Int
    public var examples: Int
    public var learningRate: Float
}

/// One model, its optimizer and its learning-rate schedule: `step(_:)` trains on one batch,
/// `evaluate` measures a loader's data in evaluation mode without a graph.
public final class Trainer {
    public let model: any Network
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    /// Optimizer steps taken so far (0-based index of the next step); the schedule's clock.
    public var globalStep: Int
    /// Modules kept in evaluation mode while the rest trains (frozen features:
    /// `FineTuning.frozenModules`).
    public var frozenModules: [Module] = []

    public init(model: any Network, optimizer: any Optimizer, schedule: LearningRateSchedule, globalStep: Int = 0) {
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.globalStep = globalStep
    }

    /// Forward, cross-entropy, backward and one update at the schedule's rate.
    public func step(images: Tensor, labels: [Int32]) -> StepMetrics {
        model.train()
        for m in frozenModules { m.eval() }
        optimizer.zeroGradients()
        // Frozen parameters still receive gradients (unused); zeroed so they do not accumulate.
        for m in frozenModules { m.zeroGradients() }
        let input = ModelInput.prepare(images, for: model.modelConfiguration)
        let logits = model(Variable(input))
        let loss = Functional.crossEntropy(logits, labels: labels)
        let predictions = Predictions.argmax(logits.value)
        let correct = zip(predictions, labels).filter { $0 == Int($1) }.count
        loss.backward()
        let rate = schedule.rate(atStep: globalStep)
        optimizer.learningRate = rate
        optimizer.step()
        globalStep += 1
        return StepMetrics(loss: loss.value.pointer[0], correct: correct, examples: labels.count, learningRate: rate)
    }

    public func step(_ batch: Batch) -> StepMetrics { step(images: batch.images, labels: batch.labels) }

    /// Loss, accuracy and confusion matrix of `model` over one epoch of `loader`, in evaluation
    /// mode (running statistics, no dropout) and without recording a graph. The model is left
    /// in evaluation mode.
    public static func evaluate(_ model: any Network, loader: DataLoader, classCount: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        model.eval()
        var confusion = ConfusionMatrix(classCount: classCount)
        var lossSum = 0.0
        var examples = 0
        var index = 0
        let batches = loader.batchesPerEpoch
        while let batch = try loader.next() {
            let logits = logits(model, images: batch.images)
            lossSum += Double(CrossEntropy.forward(logits, labels: batch.labels)) * Double(batch.labels.count)
            for (p, l) in zip(Predictions.argmax(logits), batch.labels) { confusion.add(label: Int(l), prediction: p) }
            examples += batch.labels.count
            index += 1
            progress?(index, batches)
        }
        return EvaluationResult(loss: examples == 0 ? 0 : lossSum / Double(examples), accuracy: confusion.accuracy,
                                examples: examples, confusion: confusion)
    }

    /// The model's logits `(classes, N)` for images `(C, N, H, W)` without a graph, in the
    /// model's current mode (training mode uses, and updates, batch statistics).
    public static func logits(_ model: any Network, images: Tensor) -> Tensor {
        Autograd.withoutGradient {
            model(Variable(ModelInput.prepare(images, for: model.modelConfiguration))).value
        }
    }
}

extension Trainer {
    /// The logits of already flat features `(F, N)` (the MLP's input), without a graph.
    public static func logits(_ model: any Network, flatFeatures: Tensor) -> Tensor {
        Autograd.withoutGradient { model(Variable(flatFeatures)).value }
    }
}

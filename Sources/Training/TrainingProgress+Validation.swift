import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// A training state that lies is refused before it trains: every field of `TrainingProgress`
/// is checked on its own and against the others (a negative global step once trained at
/// learning rate −inf and overwrote the model with NaN), and against the run's data once it is
/// loaded. And a checkpoint is never written from a state that is not finite.
extension TrainingProgress {
    /// The checks that need nothing but the state itself: ranges, the seeds' text, and the
    /// step count against the loader's epoch and position (each epoch of `exampleCount`
    /// examples in batches of `batchSize` is ⌈exampleCount / batchSize⌉ steps). `path` names
    /// the file in the error.
    public func validate(path: String) throws {
        func fail(_ field: String, _ value: Any, _ reason: String) -> TrainingError {
            .invalidTrainingState(path: path, field: "training_progress.\(field)", value: "\(value)", reason: reason)
        }
        try configuration.validate()
        let l = loader
        guard globalStep >= 0 else { throw fail("globalStep", globalStep, "a step count is 0 or more") }
        guard l.epoch >= 0 else { throw fail("loader.epoch", l.epoch, "an epoch count is 0 or more") }
        guard l.exampleCount >= 1 else { throw fail("loader.exampleCount", l.exampleCount, "an epoch has at least 1 example") }
        guard l.batchSize == configuration.batchSize else {
            throw fail("loader.batchSize", l.batchSize, "the run's batch size is \(configuration.batchSize)")
        }
        guard let seed = UInt64(l.seed), seed == configuration.seed else {
            throw fail("loader.seed", l.seed, "the run's seed is \(configuration.seed)")
        }
        guard l.position >= 0, l.position <= l.exampleCount else {
            throw fail("loader.position", l.position, "a position is within 0...\(l.exampleCount), the examples of an epoch")
        }
        // As the run's loader counts them (a last batch too small for batch norm is dropped).
        let minimumLastBatch = try Architecture(configuration.model).minimumTrainingBatch
        let stepsPerEpoch = DataLoader.batchesPerEpoch(exampleCount: l.exampleCount, batchSize: l.batchSize, dropLast: false,
                                                       minimumLastBatch: minimumLastBatch)
        let stepsInEpoch = CheckedSize.ceilingDivision(l.position, by: l.batchSize)
        guard stepsInEpoch <= stepsPerEpoch, l.position == min(stepsInEpoch * l.batchSize, l.exampleCount) else {
            throw fail("loader.position", l.position, "not a batch boundary of batches of \(l.batchSize)")
        }
        let expected: Int
        do {
            expected = try CheckedSize.sum(CheckedSize.product(l.epoch, stepsPerEpoch, what: "training_progress.loader.epoch"),
                                           stepsInEpoch, what: "training_progress.globalStep")
        } catch {
            throw fail("loader.epoch", l.epoch, "\(error)")
        }
        guard globalStep == expected else {
            throw fail("globalStep", globalStep, "epoch \(l.epoch) position \(l.position) with \(stepsPerEpoch) steps per epoch"
                       + " is step \(expected)")
        }
        guard optimizerStepCount == globalStep else {
            throw fail("optimizerStepCount", optimizerStepCount, "the optimizer steps once per step: \(globalStep)")
        }
        guard UInt64(dropoutSeed) != nil else { throw fail("dropoutSeed", dropoutSeed, "not a UInt64 in decimal") }
        guard let bits = UInt64(epochLossSumBits, radix: 16) else {
            throw fail("epochLossSumBits", epochLossSumBits, "not the hexadecimal bits of a Double")
        }
        let lossSum = Double(bitPattern: bits)
        guard lossSum.isFinite, lossSum >= 0 else {
            throw fail("epochLossSumBits", epochLossSumBits, "the loss sum \(lossSum) is not a finite number ≥ 0")
        }
        guard epochExamples == l.position else {
            throw fail("epochExamples", epochExamples, "the loader is at position \(l.position) of the epoch")
        }
        guard epochCorrect >= 0, epochCorrect <= epochExamples else {
            throw fail("epochCorrect", epochCorrect, "must be within 0...\(epochExamples), the examples of the epoch so far")
        }
        for (field, value) in [("epochSeconds", epochSeconds), ("runSeconds", runSeconds)] where !(value.isFinite && value >= 0) {
            throw fail(field, value, "a duration is a finite number of seconds ≥ 0")
        }
    }

    /// The check against the run's data: the loader's epoch size is the training set's (after
    /// `--limit`); a different one means another dataset or a changed file.
    public func validate(path: String, trainingExamples: Int) throws {
        let expected = min(trainingExamples, configuration.limit ?? trainingExamples)
        guard loader.exampleCount == expected else {
            throw TrainingError.invalidTrainingState(
                path: path, field: "training_progress.loader.exampleCount", value: "\(loader.exampleCount)",
                reason: "the training data has \(expected) examples per epoch (was the dataset changed?)")
        }
    }
}

extension TrainingCheckpoint {
    /// Refuses to save a state that is not finite: a parameter, running statistic or optimizer
    /// buffer with a NaN or infinity, or a NaN/infinite epoch loss. Called before anything is
    /// written, so the previous checkpoint stays the newest.
    public static func checkFinite(model: any Network, optimizer: any Optimizer, progress: TrainingProgress) throws {
        if !progress.epochLossSum.isFinite {
            throw TrainingError.nonFiniteState(what: "the epoch's loss sum (\(progress.epochLossSum))", step: progress.globalStep)
        }
        let tensors = model.stateDict().map { ($0.name, $0.tensor) }
            + optimizerTensors(optimizer, parameterNames: model.namedParameters().map(\.name))
        for (name, tensor) in tensors {
            if let bad = firstNonFinite(tensor) {
                throw TrainingError.nonFiniteState(what: "\(name) (element \(bad.index) is \(bad.value))", step: progress.globalStep)
            }
        }
    }

    static func firstNonFinite(_ t: Tensor) -> (index: Int, value: Float)? {
        guard t.isContiguous else {
            return t.array.enumerated().first { !$0.element.isFinite }.map { ($0.offset, $0.element) }
        }
        return t.withPointer { p in
            for i in 0..<t.count where !p[i].isFinite { return (i, p[i]) }
            return nil
        }
    }
}

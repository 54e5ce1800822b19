import Autograd
import DataParallel
import Datasets
import DenseNetModels
import Foundation
import Kernels
import NeuralLayers
import Runtime

/// One model trained over the ranks of an MPI job (`mpirun -np N densenet train ...`), as
/// PyTorch's DistributedDataParallel does (Li et al. 2020, arXiv 2006.15704), computing what one
/// process computes with the whole batch:
/// - `--batch` is the global batch: each rank's loader delivers its `RankSlice` of every global
///   batch of the same seeded shuffle; augmentation draws are seeded by the global position
///   (Sources/Datasets/DataLoader.swift) and dropout masks by the element's place in the global
///   batch (`Autograd.dropoutExamples`), so the slicing changes neither.
/// - parameters and buffers are broadcast from rank 0 at the start (`broadcastState`).
/// - each rank's mean loss is weighted by `RankSlice.lossScale` (ranks · slice / batch) as the
///   backward seed, so that the average of the ranks' gradients is the gradient of the global
///   batch's mean loss, also for unequal slices; gradients are averaged in `GradientBuckets`,
///   each parameter marked ready from `Autograd.leafGradientCompleted` as soon as its gradient
///   is final, and the optimizer steps after `finish()`.
/// - batch norm is synchronised (`BatchNormState.statisticsReducer`, see
///   Sources/Autograd/BatchNormalization+Synchronized.swift) unless turned off, which gives
///   per-rank statistics as plain DDP.
/// - the step's loss, accuracy and the stop request are summed over the ranks, so every rank
///   logs the same global numbers and stops at the same step; the evaluation is split by rank
///   and its sums reduced.
/// A failed collective leaves the ranks out of step: the job is aborted (`Communicator.abort`).
public final class DataParallelTraining {
    public let communicator: Communicator
    public let synchronizeBatchNorm: Bool
    public let slice: RankSlice
    public let buckets: GradientBuckets
    private let parameters: [Parameter]
    private let indexOfNode: [ObjectIdentifier: Int]
    private let reducer: CommunicatorStatisticsReducer
    /// Seconds the last step spent in synchronised batch norm's all-reduces (blocking; the
    /// gradients' wait is `buckets.lastWaitSeconds`).
    public private(set) var lastBatchNormSeconds = 0.0

    /// Exit status of a job aborted after a failed collective (EX_SOFTWARE).
    public static let abortStatus: Int32 = 70

    public init(model: any Network, communicator: Communicator, synchronizeBatchNorm: Bool = true,
                bucketCapBytes: Int = GradientBuckets.defaultCapBytes) throws {
        self.communicator = communicator
        self.synchronizeBatchNorm = synchronizeBatchNorm
        slice = RankSlice(rank: communicator.rank, rankCount: communicator.size)
        parameters = model.parameters
        var index = [ObjectIdentifier: Int]()
        for (i, p) in parameters.enumerated() { index[ObjectIdentifier(p.node)] = i }
        indexOfNode = index
        buckets = try GradientBuckets(elementCounts: parameters.map(\.count), capBytes: bucketCapBytes,
                                      communicator: communicator)
        reducer = CommunicatorStatisticsReducer(communicator)
    }

    /// Every rank must get at least one example of every global batch (an empty slice would
    /// leave its ranks' collectives unmatched): checks the batch size and the last, partial batch.
    public static func checkSlices(exampleCount: Int, batchSize: Int, ranks: Int, option: String) throws {
        guard ranks > 1, exampleCount > 0 else { return }
        let last = exampleCount % batchSize
        if min(batchSize, exampleCount) < ranks || (last != 0 && last < ranks) {
            throw TrainingError.invalidOption(option, reason: "a batch of \(min(batchSize, exampleCount))"
                + (last != 0 ? " (the last one of each epoch: \(last))" : "")
                + " examples cannot give each of \(ranks) ranks one; use a batch size (and --limit) with every batch"
                + " at least \(ranks), or fewer ranks")
        }
    }

    /// Copies rank 0's parameters and buffers (batch-norm running statistics) to every rank.
    public func broadcastState(of model: any Network) throws {
        for p in model.parameters { try communicator.broadcast(p.value, root: 0) }
        for (_, tensor) in model.namedBuffers() { try communicator.broadcast(tensor, root: 0) }
    }

    /// Ends the job on every rank after a failed collective.
    func fail(_ what: String, _ error: Error) -> Never {
        communicator.abort(code: DataParallelTraining.abortStatus, message: "\(what) failed: \(error)")
    }

    /// Runs one step's `body` with data-parallel training's hooks installed: dropout by global
    /// example index (this rank's `offset` in a global batch of `globalCount`), synchronised batch
    /// norm (unless turned off), and every parameter's gradient handed to the buckets as soon as
    /// it is final. `body` does forward and backward, then calls the function it is given, which
    /// waits for the averaged gradients, before its optimizer step.
    public func synchronizedStep<R>(offset: Int, globalCount: Int, _ body: (_ averageGradients: () -> Void) throws -> R) rethrows -> R {
        Autograd.dropoutExamples = ExampleRange(offset: offset, globalCount: globalCount)
        BatchNormState.statisticsReducer = synchronizeBatchNorm ? reducer : nil
        Autograd.leafGradientCompleted = { [unowned self] node in
            guard !DryRun.isActive, let i = indexOfNode[ObjectIdentifier(node)] else { return }
            do { try buckets.markReady(i, gradient: parameters[i].grad) } catch { fail("gradient all-reduce", error) }
        }
        reducer.seconds = 0
        defer {
            lastBatchNormSeconds = reducer.seconds
            Autograd.dropoutExamples = nil
            BatchNormState.statisticsReducer = nil
            Autograd.leafGradientCompleted = nil
        }
        return try body { [self] in
            Autograd.leafGradientCompleted = nil
            do {
                // A parameter the loss did not reach has a zero gradient, final now.
                for i in parameters.indices where !buckets.isMarked(i) { try buckets.markReady(i, gradient: parameters[i].grad) }
                try buckets.finish()
            } catch { fail("gradient all-reduce", error) }
        }
    }

    /// One training step of `trainer` on this rank's slice `batch` of a global batch: global
    /// metrics, and whether any rank asked to stop (`stopRequested()`, asked on this one after the update).
    public func step(_ trainer: Trainer, batch: Batch, stopRequested: () -> Bool) throws -> (metrics: StepMetrics, stop: Bool) {
        let model = trainer.model, optimizer = trainer.optimizer
        model.train()
        for m in trainer.frozenModules { m.eval() }
        optimizer.zeroGradients()
        for m in trainer.frozenModules { m.zeroGradients() }
        let offset = slice.range(inBatchOf: batch.globalCount).lowerBound
        let (loss, correct, rate) = synchronizedStep(offset: offset, globalCount: batch.globalCount) { averageGradients in
            let input = ModelInput.prepare(batch.images, for: model.modelConfiguration)
            let logits = model(Variable(input))
            let loss = Functional.crossEntropy(logits, labels: batch.labels)
            let correct = zip(Predictions.argmax(logits.value), batch.labels).filter { $0 == Int($1) }.count
            let scale = slice.lossScale(batchCount: batch.globalCount)
            Autograd.backward(loss, seed: Tensor.filled([1], scale, category: .activations))
            averageGradients()
            let rate = trainer.schedule.rate(atStep: trainer.globalStep)
            optimizer.learningRate = rate
            optimizer.step()
            return (loss.value.pointer[0], correct, rate)
        }
        trainer.globalStep += 1
        let n = Double(batch.labels.count)
        var totals = [Double(loss) * n, Double(correct), n, stopRequested() ? 1 : 0]
        do { try communicator.allReduceSum(&totals) } catch { fail("metrics all-reduce", error) }
        let metrics = StepMetrics(loss: Float(totals[0] / totals[2]), correct: Int(totals[1]), examples: Int(totals[2]),
                                  learningRate: rate)
        return (metrics, totals[3] > 0)
    }

    /// `Trainer.evaluate` over this rank's slice of every batch of `loader`, the loss sum, the
    /// example count and the confusion matrix then summed over the ranks.
    public func evaluate(_ model: any Network, loader: DataLoader, classCount: Int,
                         progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationResult {
        model.eval()
        var confusion = ConfusionMatrix(classCount: classCount)
        var lossSum = 0.0, examples = 0, index = 0
        let batches = loader.batchesPerEpoch
        while let batch = try loader.next() {
            index += 1
            progress?(index, batches)
            guard !batch.labels.isEmpty else { continue }
            let logits = Trainer.logits(model, images: batch.images)
            lossSum += Double(CrossEntropy.forward(logits, labels: batch.labels)) * Double(batch.labels.count)
            for (p, l) in zip(Predictions.argmax(logits), batch.labels) { confusion.add(label: Int(l), prediction: p) }
            examples += batch.labels.count
        }
        var totals = [lossSum, Double(examples)] + confusion.counts.flatMap { $0.map(Double.init) }
        do { try communicator.allReduceSum(&totals) } catch { fail("evaluation all-reduce", error) }
        for t in 0..<classCount {
            for p in 0..<classCount { confusion.counts[t][p] = Int(totals[2 + t * classCount + p]) }
        }
        let total = Int(totals[1])
        return EvaluationResult(loss: total == 0 ? 0 : totals[0] / Double(total), accuracy: confusion.accuracy,
                                examples: total, confusion: confusion)
    }
}

/// Synchronised batch norm's sums over a communicator, in double precision.
final class CommunicatorStatisticsReducer: BatchNormStatisticsReducer {
    let communicator: Communicator
    /// Seconds spent in the all-reduces since last set to 0.
    var seconds = 0.0
    init(_ communicator: Communicator) { self.communicator = communicator }

    func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        do { try communicator.allReduceSum(values) } catch {
            communicator.abort(code: DataParallelTraining.abortStatus, message: "synchronised batch norm all-reduce failed: \(error)")
        }
    }
}

import DataParallel
import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training

/// `bench-memory --ranks N`: one configuration trained data-parallel over N ranks (the child is
/// started by `mpirun -np N`, ChildProcess.swift). Each rank runs `TrainingStep` on its slice of
/// the global batch with `DataParallelTraining`'s hooks (synchronised batch norm, gradients
/// averaged in buckets during backward); the ranks' numbers are summed to rank 0, which alone
/// returns the record. The step's loss is each slice's mean, not weighted for unequal slices:
/// this measures memory and time, not training.
extension TrainingStepBenchmark {
    public static func runRank(_ c: BenchmarkConfiguration, communicator: Communicator) throws -> BenchmarkRecord? {
        Parallel.threadCount = max(1, c.threads)
        let (rank, size) = (communicator.rank, communicator.size)
        guard c.batch >= size else {
            throw BenchmarkError.childFailed("batch \(c.batch) cannot give each of \(size) ranks an example")
        }
        let configuration = try c.modelConfiguration()
        let architecture = try Architecture(configuration)
        let part = RankSlice(rank: rank, rankCount: size).range(inBatchOf: c.batch)
        let step = try TrainingStep(configuration, batch: part.count, policy: c.strategy)
        let parallel = try DataParallelTraining(model: step.model, communicator: communicator)
        try parallel.broadcastState(of: step.model)

        Memory.resetHighWater()
        ProcessProbe.resetPeakResident()
        let baseline = Double(ProcessProbe.residentBytes) / mib
        Memory.resetPeak()
        var times = [Double](), shares = [Double]()
        for i in 0..<(c.warmup + c.steps) {
            try communicator.barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            parallel.synchronizedStep(offset: part.lowerBound, globalCount: c.batch) { averageGradients in
                step.run(beforeUpdate: averageGradients)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if i >= c.warmup {
                times.append(seconds)
                shares.append((parallel.buckets.lastWaitSeconds + parallel.lastBatchNormSeconds) / max(seconds, 1e-12))
            }
        }
        // Every rank's peak RSS, baseline and tensor peak, and its step times, summed into slots.
        let fields = 3 + c.steps
        var gathered = [Double](repeating: 0, count: fields * size)
        let own = [Double(ProcessProbe.peakResidentBytes) / mib, baseline, Double(Memory.peak) / mib] + times
        for (j, value) in own.enumerated() { gathered[rank * fields + j] = value }
        try communicator.allReduceSum(&gathered)
        guard rank == 0 else { return nil }
        let ranks = (0..<size).map { Array(gathered[($0 * fields)..<(($0 + 1) * fields)]) }
        // A step takes as long as its slowest rank.
        let stepTimes = (0..<c.steps).map { s in ranks.map { $0[3 + s] }.max() ?? 0 }
        let sorted = stepTimes.sorted(), sortedShares = shares.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        let gflop = 3 * Double(architecture.forwardFLOPs) * Double(c.batch) / 1e9
        var record = BenchmarkRecord(
            model: c.model, strategy: c.strategy.name, batch: c.batch, input: configuration.inputShape.description,
            status: "ok", params: architecture.trainableParameters,
            baseline_rss_mib: ranks.map { $0[1] }.max(), peak_rss_mib: ranks.map { $0[0] }.max(),
            peak_minus_baseline_mib: ranks.map { $0[0] - $0[1] }.max(), peak_tensor_mib: ranks.map { $0[2] }.max(),
            median_step_s: median, min_step_s: sorted.first, images_per_s: median > 0 ? Double(c.batch) / median : nil,
            gflop_per_step: gflop, threads: c.threads, step_times_s: stepTimes)
        record.ranks = size
        record.peak_rss_per_rank_mib = ranks.map { $0[0] }
        record.communication_share = sortedShares.isEmpty ? nil : sortedShares[sortedShares.count / 2]
        return record
    }
}

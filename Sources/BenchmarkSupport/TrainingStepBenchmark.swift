import Autograd
import DenseNetModels
import Foundation
import Kernels
import NeuralLayers
import Runtime

/// One configuration to measure: a model, a memory strategy, a batch and an input size.
public struct BenchmarkConfiguration: Codable, Sendable, Equatable {
    public var model: String
    public var strategy: MemoryPolicy
    public var batch: Int
    /// `CxHxW`; nil for the model's default.
    public var input: String?
    public var classes: Int?
    /// A DenseNet's transition pooling (`DenseNetConfiguration.TransitionPooling`'s raw value);
    /// nil for the model's own.
    public var transitionPooling: String?
    public var steps: Int
    public var warmup: Int
    public var threads: Int
    /// Data-parallel ranks (`bench-memory --ranks N`, run under mpirun); nil or 1 for one process.
    public var ranks: Int?

    public init(model: String, strategy: MemoryPolicy, batch: Int, input: String? = nil, classes: Int? = nil,
                transitionPooling: DenseNetConfiguration.TransitionPooling? = nil,
                steps: Int = 3, warmup: Int = 1, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                ranks: Int? = nil) {
        self.model = model; self.strategy = strategy; self.batch = batch; self.input = input
        self.classes = classes; self.transitionPooling = transitionPooling?.rawValue
        self.steps = steps; self.warmup = warmup; self.threads = threads
        self.ranks = ranks
    }

    /// The ranks the configuration runs on (1 without `--ranks`).
    public var rankCount: Int { max(ranks ?? 1, 1) }

    /// The zoo model measured: `model` with `classes`, `input` and `transitionPooling`.
    public func modelConfiguration() throws -> ModelConfiguration {
        let configuration = try ModelZoo.configuration(named: model, classes: classes, input: input)
        guard let transitionPooling else { return configuration }
        guard let pooling = DenseNetConfiguration.TransitionPooling(rawValue: transitionPooling),
              case .denseNet(var c) = configuration else {
            throw BenchmarkError.unsupportedModel("\(model) with transition pooling '\(transitionPooling)'")
        }
        c.transitionPooling = pooling
        return .denseNet(c)
    }
}

/// One measured configuration: the fields of bench-memory's JSON records.
public struct BenchmarkRecord: Codable, Sendable {
    public var model: String
    public var strategy: String
    public var batch: Int
    public var input: String
    public var status: String            // "ok" or "failed"
    public var reason: String?
    public var params: Int?
    public var baseline_rss_mib: Double?
    public var peak_rss_mib: Double?
    public var peak_minus_baseline_mib: Double?
    public var peak_tensor_mib: Double?
    public var predicted_peak_tensor_mib: Double?
    public var median_step_s: Double?
    public var min_step_s: Double?
    public var images_per_s: Double?
    public var gflop_per_step: Double?
    public var sgemm_gflops: Double?
    public var floor_s: Double?
    public var jemalloc_allocated_mib: Double?
    public var jemalloc_resident_mib: Double?
    public var jemalloc_config: String?
    public var threads: Int?
    public var step_times_s: [Double]?
    /// The runtime's buffer cache over the measured steps (Runtime/BufferCache.swift).
    public var buffer_cache: Bool?
    public var cache_hits: Int?
    public var cache_misses: Int?
    /// Minor page faults during the measured steps (getrusage).
    public var page_faults: Int?
    /// Over several ranks (`--ranks`): their number, each rank's peak RSS (peak_rss_mib is the
    /// largest, peak_minus_baseline_mib the largest of the ranks' own), and the median share of
    /// a step rank 0 spent in communication (waiting for gradient buckets and in synchronised
    /// batch norm's all-reduces).
    public var ranks: Int?
    public var peak_rss_per_rank_mib: [Double]?
    public var communication_share: Double?

    public static func failed(_ c: BenchmarkConfiguration, input: String, reason: String) -> BenchmarkRecord {
        BenchmarkRecord(model: c.model, strategy: c.strategy.name, batch: c.batch, input: input,
                        status: "failed", reason: reason)
    }
}

/// Runs `TrainingStep` (forward + cross-entropy + backward + SGD momentum step, training mode,
/// synthetic data: the step the planner runs in a dry run) in this process and measures it.
/// bench-memory runs each configuration in a fresh child process, so the peak RSS belongs to
/// that configuration alone, and adds the planner's prediction (`predicted_peak_tensor_mib`)
/// to the record itself.
public enum TrainingStepBenchmark {
    static let mib = 1_048_576.0

    public static func run(_ c: BenchmarkConfiguration) throws -> BenchmarkRecord {
        Parallel.threadCount = max(1, c.threads)
        let configuration = try c.modelConfiguration()
        let architecture = try Architecture(configuration)
        let shape = configuration.inputShape
        let sgemm = GemmProbe.squareSgemmGFLOPS(threads: c.threads)

        let step = try TrainingStep(configuration, batch: c.batch, policy: c.strategy)

        // Baseline: model, optimizer state and data exist; nothing of a step yet. The sgemm
        // probe's blocks leave the buffer cache, and its 48 MiB no longer set the cache's bound.
        Memory.resetHighWater()
        ProcessProbe.resetPeakResident()   // purges jemalloc first
        let baseline = Double(ProcessProbe.residentBytes) / mib
        Memory.resetPeak()
        var cacheBefore = Memory.cacheStatistics
        var faultsBefore = ProcessProbe.minorPageFaults

        var times = [Double]()
        for i in 0..<(c.warmup + c.steps) {
            if i == c.warmup { (cacheBefore, faultsBefore) = (Memory.cacheStatistics, ProcessProbe.minorPageFaults) }
            let start = DispatchTime.now().uptimeNanoseconds
            step.run()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if i >= c.warmup { times.append(seconds) }
        }
        let peak = Double(ProcessProbe.peakResidentBytes) / mib
        let cache = Memory.cacheStatistics
        let faults = ProcessProbe.minorPageFaults - faultsBefore
        let stats = Jemalloc.stats()
        let sorted = times.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        // Training FLOPs: forward, and backward's two products (input and weight gradients).
        let gflop = 3 * Double(architecture.forwardFLOPs) * Double(c.batch) / 1e9
        return BenchmarkRecord(
            model: c.model, strategy: c.strategy.name, batch: c.batch, input: shape.description, status: "ok",
            params: architecture.trainableParameters,
            baseline_rss_mib: baseline, peak_rss_mib: peak, peak_minus_baseline_mib: peak - baseline,
            peak_tensor_mib: Double(Memory.peak) / mib,
            median_step_s: median, min_step_s: sorted.first, images_per_s: median > 0 ? Double(c.batch) / median : nil,
            gflop_per_step: gflop, sgemm_gflops: sgemm, floor_s: gflop / sgemm,
            jemalloc_allocated_mib: Double(stats.allocated) / mib, jemalloc_resident_mib: Double(stats.resident) / mib,
            jemalloc_config: Jemalloc.buildConfig, threads: c.threads, step_times_s: times,
            buffer_cache: Memory.cachesBuffers, cache_hits: cache.hits - cacheBefore.hits,
            cache_misses: cache.misses - cacheBefore.misses, page_faults: faults)
    }
}

public enum BenchmarkError: Error, CustomStringConvertible {
    case unsupportedModel(String)
    case childFailed(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return "bench-memory cannot measure '\(name)' (try densenet-bc-100-12 or densenet121)"
        case .childFailed(let why): return why
        }
    }
}

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
    /// Time the measured steps per operation class (`Profile`); nil or false: no profile.
    public var profile: Bool?
    /// The kernel level (`KernelLevel` name: swift, baseline, avx2, avx512); nil: the CPU's best.
    public var kernelLevel: String?
    /// Where thin 3x3 convolutions use our kernel (`Conv2d.ThinKernelUse`: off, measured,
    /// always); nil: measured.
    public var thinKernels: String?

    public init(model: String, strategy: MemoryPolicy, batch: Int, input: String? = nil, classes: Int? = nil,
                transitionPooling: DenseNetConfiguration.TransitionPooling? = nil,
                steps: Int = 3, warmup: Int = 1, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                ranks: Int? = nil, profile: Bool = false) {
        self.model = model; self.strategy = strategy; self.batch = batch; self.input = input
        self.classes = classes; self.transitionPooling = transitionPooling?.rawValue
        self.steps = steps; self.warmup = warmup; self.threads = threads
        self.ranks = ranks
        self.profile = profile ? true : nil
    }

    /// This configuration with a kernel level and thin-kernel use ("best" and "measured" are the defaults, kept as nil).
    public func with(kernelLevel: String, thinKernels: String) -> BenchmarkConfiguration {
        var c = self
        c.kernelLevel = kernelLevel == "best" ? nil : kernelLevel
        c.thinKernels = thinKernels == "measured" ? nil : thinKernels
        return c
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
    /// The median of the sgemm probes (GemmProbe.Series), one before the steps and one after each.
    public var sgemm_gflops: Double?
    public var floor_s: Double?
    /// Every probe's GFLOP/s, in order, and (highest − lowest) / median.
    public var sgemm_probes_gflops: [Double]?
    public var sgemm_spread: Double?
    public var jemalloc_allocated_mib: Double?
    public var jemalloc_resident_mib: Double?
    public var jemalloc_config: String?
    public var threads: Int?
    public var step_times_s: [Double]?
    /// The runtime's buffer cache over the measured steps (Runtime/BufferCache.swift).
    public var buffer_cache: Bool?
    public var cache_hits: Int?
    public var cache_misses: Int?
    /// MiB of evicted cached blocks' pages moved into new blocks instead of faulted in anew
    /// (Runtime/Memory+Pages.swift), over the measured steps.
    public var cache_moved_mib: Double?
    /// Minor page faults during the measured steps (getrusage).
    public var page_faults: Int?
    /// Over several ranks (`--ranks`): their number, each rank's peak RSS (peak_rss_mib is the
    /// largest, peak_minus_baseline_mib the largest of the ranks' own), and the median share of
    /// a step rank 0 spent in communication (waiting for gradient buckets and in synchronised
    /// batch norm's all-reduces).
    public var ranks: Int?
    public var peak_rss_per_rank_mib: [Double]?
    public var communication_share: Double?
    /// The kernel level and thin-kernel use the step ran with.
    public var kernel_level: String?
    public var thin_kernels: String?
    /// With `profile`: seconds per measured step by operation class, exclusive of nested
    /// classes (Profile.swift); calls and page faults per step likewise.
    public var profile: [Profile.Entry]?
    /// With `profile`: the step's time in no class (autograd bookkeeping, graph, glue), s/step.
    public var profile_unattributed_s: Double?
    /// With `profile`: the step's minor page faults (all threads) outside any class (e.g.
    /// autograd zeroing a fresh gradient buffer), per step.
    public var profile_unattributed_page_faults: Int?
    /// With `profile`: of `profile_unattributed_s`, the part outside parallel regions, s/step.
    public var profile_unattributed_serial_s: Double?
    /// With `profile`: the share of the step's wall time outside any parallel region.
    public var serial_share: Double?
    /// With `profile`: idle thread-seconds inside parallel regions divided by the threads, per
    /// step (already inside the classes' times: a kernel waits for its slowest thread).
    public var waiting_s: Double?
    /// With `profile`: parallel regions per step (each wakes the pool's threads and waits for
    /// its slowest part), and the waiting in those run outside any class, s/step.
    public var parallel_regions: Int?
    public var profile_unattributed_waiting_s: Double?
    /// With `profile`: the step on `threads` dedicated cores as far as the split of its work
    /// limits it (its serial time, each parallel region as long as its longest part's CPU time;
    /// Profile.swift), and the unattributed rest's share of it, s/step. Measured with more threads
    /// than cores, it estimates a machine with that many; memory bandwidth is not in it.
    public var dedicated_step_s: Double?
    public var profile_unattributed_dedicated_s: Double?

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
        let (level, thin) = try kernelChoice(c)
        let saved = (KernelLevel.active, Conv2d.thinKernels)
        (KernelLevel.active, Conv2d.thinKernels) = (level, thin)
        defer { (KernelLevel.active, Conv2d.thinKernels) = saved }
        let configuration = try c.modelConfiguration()
        let architecture = try Architecture(configuration)
        let shape = configuration.inputShape
        // The GEMM rate: one probe now and one after every step (warm-up included), each the
        // best of two products; the median is the floor's rate, the spread says how much the
        // machine moved meanwhile (GemmProbe).
        let probes = GemmProbe.Series()
        probes.probe(threads: c.threads)

        let step = try TrainingStep(configuration, batch: c.batch, policy: c.strategy)

        // Baseline: model, optimizer state and data exist; nothing of a step yet. The sgemm
        // probe's pages are returned after each probe, and its matrices are not runtime memory.
        Memory.resetHighWater()
        ProcessProbe.resetPeakResident()   // purges jemalloc first
        let baseline = Double(ProcessProbe.residentBytes) / mib
        Memory.resetPeak()
        var cacheBefore = Memory.cacheStatistics
        var faults = 0

        // The peak RSS is taken per step: VmHWM is read after the step and reset (without
        // purging anything) after the probe that follows it, so the probe's 48 MiB never count.
        var peakBytes = 0
        var times = [Double]()
        var reports = [Profile.Report]()
        for i in 0..<(c.warmup + c.steps) {
            if i == c.warmup { cacheBefore = Memory.cacheStatistics }
            let faultsBefore = ProcessProbe.minorPageFaults
            let start = DispatchTime.now().uptimeNanoseconds
            let profiling = c.profile == true && i >= c.warmup
            if profiling { Profile.start() }
            step.run()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if profiling { reports.append(Profile.stop()) }
            if i >= c.warmup {
                times.append(seconds)
                faults += ProcessProbe.minorPageFaults - faultsBefore
            }
            peakBytes = max(peakBytes, ProcessProbe.peakResidentBytes)
            probes.probe(threads: c.threads)
            ProcessProbe.resetPeakResident(purging: false)
        }
        let peak = Double(peakBytes) / mib
        let cache = Memory.cacheStatistics
        let stats = Jemalloc.stats()
        let sgemm = probes.median ?? 0
        let sorted = times.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        // Training FLOPs: forward, and backward's two products (input and weight gradients).
        let gflop = 3 * Double(architecture.forwardFLOPs) * Double(c.batch) / 1e9
        var record = BenchmarkRecord(
            model: c.model, strategy: c.strategy.name, batch: c.batch, input: shape.description, status: "ok",
            params: architecture.trainableParameters,
            baseline_rss_mib: baseline, peak_rss_mib: peak, peak_minus_baseline_mib: peak - baseline,
            peak_tensor_mib: Double(Memory.peak) / mib,
            median_step_s: median, min_step_s: sorted.first, images_per_s: median > 0 ? Double(c.batch) / median : nil,
            gflop_per_step: gflop, sgemm_gflops: sgemm, floor_s: sgemm > 0 ? gflop / sgemm : nil,
            sgemm_probes_gflops: probes.rates, sgemm_spread: probes.spread,
            jemalloc_allocated_mib: Double(stats.allocated) / mib, jemalloc_resident_mib: Double(stats.resident) / mib,
            jemalloc_config: Jemalloc.buildConfig, threads: c.threads, step_times_s: times,
            buffer_cache: Memory.cachesBuffers, cache_hits: cache.hits - cacheBefore.hits,
            cache_misses: cache.misses - cacheBefore.misses,
            cache_moved_mib: Double(cache.movedBytes - cacheBefore.movedBytes) / mib, page_faults: faults)
        if !reports.isEmpty { addProfile(reports, stepSeconds: times, threads: c.threads, to: &record) }
        record.kernel_level = level.description
        record.thin_kernels = thin.rawValue
        return record
    }

    /// The kernel level called `name` (best, swift, baseline, avx2, avx512), checked against this CPU
    /// (bench-memory's and bench-kernels' --kernel-level).
    public static func kernelLevel(named name: String) throws -> KernelLevel {
        if name == "best" { return .best }
        guard let named = KernelLevel(name: name) else {
            throw BenchmarkError.unsupportedKernels("unknown kernel level '\(name)' (use best, "
                + KernelLevel.allCases.map(\.description).joined(separator: ", ") + ")")
        }
        guard named.isSupported else {
            throw BenchmarkError.unsupportedKernels("this CPU cannot run the \(name) kernels (it supports "
                + KernelLevel.supported.map(\.description).joined(separator: ", ") + ")")
        }
        return named
    }

    /// The kernel level and thin-kernel use `c` asks for, checked against this CPU.
    public static func kernelChoice(_ c: BenchmarkConfiguration) throws -> (KernelLevel, Conv2d.ThinKernelUse) {
        let level = try kernelLevel(named: c.kernelLevel ?? "best")
        var thin = Conv2d.ThinKernelUse.measured
        if let name = c.thinKernels {
            guard let use = Conv2d.ThinKernelUse(rawValue: name) else {
                throw BenchmarkError.unsupportedKernels("unknown thin-kernel use '\(name)' (use off, measured or always)")
            }
            thin = use
        }
        return (level, thin)
    }

    /// Per-step averages of the profiled steps.
    static func addProfile(_ reports: [Profile.Report], stepSeconds: [Double], threads: Int, to record: inout BenchmarkRecord) {
        // Per-step means over the profiled steps (counts rounded down).
        func mean(_ value: (Profile.Report) -> Double) -> Double { reports.map(value).reduce(0, +) / Double(reports.count) }
        func mean(_ value: (Profile.Report) -> Int) -> Int { reports.map(value).reduce(0, +) / reports.count }
        var entries = reports[0].entries
        for i in entries.indices {
            entries[i].seconds = mean { $0.entries[i].seconds }
            entries[i].calls = mean { $0.entries[i].calls }
            entries[i].pageFaults = mean { $0.entries[i].pageFaults }
            entries[i].parallelSeconds = mean { $0.entries[i].parallelSeconds ?? 0 }
            entries[i].idleThreadSeconds = mean { $0.entries[i].idleThreadSeconds ?? 0 }
            entries[i].narrowRegions = mean { $0.entries[i].narrowRegions ?? 0 }
            entries[i].dedicatedParallelSeconds = mean { $0.entries[i].dedicatedParallelSeconds ?? 0 }
        }
        let step = stepSeconds.reduce(0, +) / Double(stepSeconds.count)
        let threadCount = Double(max(threads, 1))
        record.profile = entries
        record.profile_unattributed_s = step - entries.map(\.seconds).reduce(0, +)
        if let faults = record.page_faults {
            let inClasses = reports.map { $0.entries.map(\.pageFaults).reduce(0, +) }.reduce(0, +)
            record.profile_unattributed_page_faults = max(0, faults - inClasses) / reports.count
        }
        record.profile_unattributed_serial_s = max(0, (record.profile_unattributed_s ?? 0)
                                                      - mean { $0.unattributedParallelSeconds ?? 0 })
        record.serial_share = step > 0 ? max(0, step - mean(\.parallelSeconds)) / step : nil
        record.waiting_s = mean(\.idleThreadSeconds) / threadCount
        record.parallel_regions = mean(\.parallelRegions)
        record.profile_unattributed_waiting_s = mean { $0.unattributedIdleThreadSeconds ?? 0 } / threadCount
        record.dedicated_step_s = max(0, step - mean(\.parallelSeconds)) + mean { $0.dedicatedParallelSeconds ?? 0 }
        record.profile_unattributed_dedicated_s = (record.profile_unattributed_serial_s ?? 0)
            + mean { $0.unattributedDedicatedParallelSeconds ?? 0 }
    }
}

public enum BenchmarkError: Error, CustomStringConvertible {
    case unsupportedModel(String)
    case childFailed(String)
    case unsupportedKernels(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return "bench-memory cannot measure '\(name)' (try densenet-bc-100-12 or densenet121)"
        case .childFailed(let why): return why
        case .unsupportedKernels(let why): return "bench-memory: \(why)"
        }
    }
}

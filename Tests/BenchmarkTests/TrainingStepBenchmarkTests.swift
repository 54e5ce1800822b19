import BenchmarkSupport
import DenseNetModels
import Foundation
import Kernels
import Runtime
import XCTest

/// bench-memory's step (`TrainingStepBenchmark.run`) on tiny models: what it measures against
/// the memory planner's prediction, which is exact on one thread (Sources/DenseNetModels/
/// MemoryPlanner.swift), and what its record says.
final class TrainingStepBenchmarkTests: XCTestCase {
    var savedThreads = 1

    override func setUp() { savedThreads = Parallel.threadCount }
    override func tearDown() { Parallel.threadCount = savedThreads }

    /// Runs `c` and returns its record and its measured tensor peak in bytes, less what was
    /// live before (tensors other tests left).
    func measure(_ c: BenchmarkConfiguration) throws -> (record: BenchmarkRecord, peakBytes: Int) {
        let before = Memory.snapshot().active
        let record = try TrainingStepBenchmark.run(c)
        let peakMiB = try XCTUnwrap(record.peak_tensor_mib)
        return (record, Int(peakMiB * 1_048_576) - before)
    }

    func testTensorPeakEqualsThePlannersPredictionOnOneThread() throws {
        for strategy in MemoryPolicy.allPresets {
            let c = BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: strategy, batch: 2, input: "3x8x8",
                                           steps: 1, warmup: 0, threads: 1)
            let (record, peak) = try measure(c)
            XCTAssertEqual(record.status, "ok")
            let model = try ModelZoo.configuration(named: "densenet-bc-10-4", input: "3x8x8")
            let plan = try MemoryPlanner.plan(model, batch: 2, policy: strategy, threads: 1)
            XCTAssertEqual(peak, plan.peakBytes, "\(strategy): measured \(peak), predicted \(plan.peakBytes)")
        }
    }

    /// The dense MLP trains by regression (mean squared error); transition pooling reaches the
    /// model built.
    func testRegressionAndMaxPoolingStepsMatchThePlannerToo() throws {
        let mlp = BenchmarkConfiguration(model: "dense-mlp", strategy: .shared, batch: 4, input: "6", classes: 1,
                                         steps: 1, warmup: 0, threads: 1)
        let mlpPlan = try MemoryPlanner.plan(try ModelZoo.configuration(named: "dense-mlp", classes: 1, input: "6"),
                                             batch: 4, policy: .shared, threads: 1)
        XCTAssertEqual(try measure(mlp).peakBytes, mlpPlan.peakBytes)

        let pooled = BenchmarkConfiguration(model: "d2l", strategy: .naive, batch: 2, input: "1x32x32",
                                            transitionPooling: .max, steps: 1, warmup: 0, threads: 1)
        guard case .denseNet(var d2l) = try ModelZoo.configuration(named: "d2l", input: "1x32x32") else {
            return XCTFail("d2l is not a DenseNet")
        }
        let averagePlan = try MemoryPlanner.plan(.denseNet(d2l), batch: 2, policy: .naive, threads: 1)
        d2l.transitionPooling = .max
        XCTAssertEqual(try pooled.modelConfiguration(), .denseNet(d2l))
        let maxPlan = try MemoryPlanner.plan(.denseNet(d2l), batch: 2, policy: .naive, threads: 1)
        // Max pooling keeps its argmax for backward: the two predictions differ, and the step
        // measured is the max-pooling one.
        XCTAssertNotEqual(averagePlan.peakBytes, maxPlan.peakBytes)
        XCTAssertEqual(try measure(pooled).peakBytes, maxPlan.peakBytes)
    }

    func testRecordDescribesTheRun() throws {
        let c = BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: .minimal, batch: 3, input: "3x8x8",
                                       steps: 3, warmup: 1, threads: 1)
        let (record, _) = try measure(c)
        XCTAssertEqual(record.status, "ok")
        XCTAssertNil(record.reason)
        XCTAssertEqual(record.model, "densenet-bc-10-4")
        XCTAssertEqual(record.strategy, "minimal")
        XCTAssertEqual(record.batch, 3)
        XCTAssertEqual(record.input, "3x8x8")
        XCTAssertEqual(record.threads, 1)
        XCTAssertEqual(Parallel.threadCount, 1)
        XCTAssertEqual(record.params, try Architecture(try c.modelConfiguration()).trainableParameters)
        // Three measured steps (the warm-up one is not), the median the middle one.
        let times = try XCTUnwrap(record.step_times_s)
        XCTAssertEqual(times.count, 3)
        XCTAssertTrue(times.allSatisfy { $0 > 0 })
        XCTAssertEqual(record.median_step_s, times.sorted()[1])
        XCTAssertEqual(record.min_step_s, times.min())
        XCTAssertEqual(try XCTUnwrap(record.images_per_s), 3 / times.sorted()[1], accuracy: 1e-9)
        XCTAssertGreaterThan(try XCTUnwrap(record.peak_rss_mib), 0)
        XCTAssertGreaterThan(try XCTUnwrap(record.sgemm_gflops), 0)
        // bench-memory's parent adds the prediction, not the step.
        XCTAssertNil(record.predicted_peak_tensor_mib)
    }

    /// The GEMM floor is the median of several probes (one before the steps, one after each),
    /// and the probes' 48 MiB of matrices never count in the step's peak RSS or tensor peak.
    func testFloorIsTheMedianOfInterleavedProbesThatDoNotCountAsMemory() throws {
        let c = BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: .naive, batch: 2, input: "3x8x8",
                                       steps: 3, warmup: 1, threads: 1)
        let (record, peak) = try measure(c)
        let probes = try XCTUnwrap(record.sgemm_probes_gflops)
        XCTAssertEqual(probes.count, 1 + 1 + 3)
        XCTAssertTrue(probes.allSatisfy { $0 > 0 })
        let sorted = probes.sorted()
        XCTAssertEqual(try XCTUnwrap(record.sgemm_gflops), sorted[2], accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(record.sgemm_spread), (sorted[4] - sorted[0]) / sorted[2], accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(record.floor_s), try XCTUnwrap(record.gflop_per_step) / sorted[2], accuracy: 1e-12)
        // This step needs well under a MiB; three 2048² matrices are 48 MiB.
        XCTAssertLessThan(try XCTUnwrap(record.peak_minus_baseline_mib), 24)
        XCTAssertLessThan(peak, 1 << 20)
    }

    /// Under `checkpoint` every concatenation is wider than the last, so misses evict cached
    /// blocks whose pages the new blocks take over (Runtime/Memory+Pages.swift): the record counts
    /// them, and a run with the buffer cache off moves nothing.
    func testRecordCountsPagesMovedIntoNewBlocks() throws {
        let c = BenchmarkConfiguration(model: "densenet-bc-16-8", strategy: .checkpoint, batch: 16, input: "3x32x32",
                                       steps: 2, warmup: 1, threads: 1)
        let record = try TrainingStepBenchmark.run(c)
        XCTAssertGreaterThan(try XCTUnwrap(record.cache_moved_mib), 1)
        XCTAssertGreaterThan(try XCTUnwrap(record.cache_misses), 0)
        Memory.cachesBuffers = false
        defer { Memory.cachesBuffers = true }
        XCTAssertEqual(try XCTUnwrap(TrainingStepBenchmark.run(c).cache_moved_mib), 0)
    }

    /// The profile splits a step into operation classes: every class a DenseNet runs appears,
    /// the classes never add up to more than the step, and on one thread nothing runs in parallel.
    func testProfileSplitsTheStepIntoOperationClasses() throws {
        let c = BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: .minimal, batch: 2, input: "3x8x8",
                                       steps: 2, warmup: 1, threads: 1, profile: true)
        let record = try TrainingStepBenchmark.run(c)
        let entries = try XCTUnwrap(record.profile)
        let calls = Dictionary(uniqueKeysWithValues: entries.map { ($0.operation, $0.calls) })
        for op: Profile.Operation in [.conv1x1Forward, .conv1x1Backward, .conv3x3Forward, .conv3x3Backward,
                                      .batchNormReLU, .pooling, .loss, .linear, .optimizer, .allocation] {
            XCTAssertGreaterThan(calls[op.name] ?? 0, 0, "\(op.name) was not seen")
        }
        let steps = try XCTUnwrap(record.step_times_s)
        let step = steps.reduce(0, +) / Double(steps.count)
        XCTAssertLessThanOrEqual(entries.map(\.seconds).reduce(0, +), step * 1.001)
        XCTAssertEqual(try XCTUnwrap(record.profile_unattributed_s), step - entries.map(\.seconds).reduce(0, +),
                       accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(record.serial_share), 1, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(record.waiting_s), 0)
        // The step's page faults are the classes' plus the unattributed rest (per step, rounded down).
        let faults = try XCTUnwrap(record.page_faults), rest = try XCTUnwrap(record.profile_unattributed_page_faults)
        let perStepInClasses = entries.map(\.pageFaults).reduce(0, +)
        XCTAssertGreaterThanOrEqual(rest, 0)
        XCTAssertLessThanOrEqual(abs(perStepInClasses + rest - faults / steps.count), entries.count + 1)  // each class rounds down
        XCTAssertNotNil(Reports.profileTable(record))
        // Without --profile no profile is taken.
        var plain = c
        plain.profile = nil
        XCTAssertNil(try TrainingStepBenchmark.run(plain).profile)
    }

    /// A step can run on the Swift references and without the thin kernel (for A/B runs); the
    /// record says what ran, the defaults come back afterwards, bad names are typed errors.
    func testKernelChoiceIsAppliedRecordedAndRestored() throws {
        let c = BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: .shared, batch: 2, input: "3x8x8",
                                       steps: 1, warmup: 0, threads: 1).with(kernelLevel: "swift", thinKernels: "off")
        let record = try TrainingStepBenchmark.run(c)
        XCTAssertEqual(record.kernel_level, "swift")
        XCTAssertEqual(record.thin_kernels, "off")
        XCTAssertEqual(KernelLevel.active, KernelLevel.best)
        XCTAssertEqual(Conv2d.thinKernels, .measured)
        let plain = try TrainingStepBenchmark.run(BenchmarkConfiguration(model: "densenet-bc-10-4", strategy: .shared, batch: 2,
                                                                          input: "3x8x8", steps: 1, warmup: 0, threads: 1))
        XCTAssertEqual(plain.kernel_level, KernelLevel.best.description)
        XCTAssertEqual(plain.thin_kernels, "measured")
        for (level, thin) in [("avx3", "measured"), ("best", "sometimes")] {
            XCTAssertThrowsError(try TrainingStepBenchmark.run(c.with(kernelLevel: level, thinKernels: thin))) { error in
                XCTAssertTrue("\(error)".contains(level == "avx3" ? "avx3" : "sometimes"), "\(error)")
            }
        }
        if let missing = KernelLevel.allCases.first(where: { !$0.isSupported }) {
            XCTAssertThrowsError(try TrainingStepBenchmark.run(c.with(kernelLevel: missing.description, thinKernels: "off")))
        }
    }

    func testModelsItCannotBuildThrow() {
        XCTAssertThrowsError(try TrainingStepBenchmark.run(BenchmarkConfiguration(model: "densenet-7", strategy: .naive, batch: 1,
                                                                                  steps: 1, warmup: 0, threads: 1)))
        XCTAssertThrowsError(try TrainingStepBenchmark.run(BenchmarkConfiguration(model: "resnet18", strategy: .naive, batch: 1,
                                                                                  transitionPooling: .max, steps: 1,
                                                                                  warmup: 0, threads: 1)))
    }
}

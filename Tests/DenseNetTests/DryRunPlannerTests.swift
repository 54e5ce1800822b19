import Autograd
import DenseNetModels
import NeuralLayers
import Runtime
import XCTest

/// The planner as a dry run of the real step (Runtime/DryRun.swift, MemoryPlanner.swift).
final class DryRunPlannerTests: XCTestCase {
    /// The predicted peaks the replay planner (the code this one replaced, commit b6a2c12) gave
    /// on 2 threads for the models of issue 10: the dry run must reproduce them to the byte.
    /// Two have moved since, by changes of the step itself: DenseNet-121 `checkpoint` holds
    /// 65,536 bytes more at its peak (535,880,128 then), the strips of the 1x1 input gradient by
    /// our product (2 threads × 128 rows × 64 positions, Conv2d+Pointwise.swift); DenseNet-BC-100
    /// `checkpoint` 63,360 bytes more (733,434,560 then), the transposed 1x1 weight gradient
    /// (330 × 48 floats, `pointwiseWeightGradient`). Since norm1 of a checkpointed layer reads
    /// the segment's inputs where they lie (`Functional.concatBatchNorm`), no concatenation is
    /// made in the forward or the recompute, and `checkpoint`'s peak fell: DenseNet-BC-100 b64 by
    /// 4,943,104 bytes to the start of the backward pass (what the forward keeps, 723,038,912 at
    /// the forward's end, and the first gradients), DenseNet-121 b8 by 4,103,936 and b64 by
    /// 32,996,096.
    func testReproducesTheReplayPlannersFigures() throws {
        let expected: [(model: String, batch: Int, peaks: [Int])] = [
            ("densenet-bc-100-12", 64, [2_148_236_096, 728_554_816, 656_491_968, 234_143_936]),
            ("densenet121", 8, [1_071_837_120, 531_841_728, 493_721_536, 234_588_096]),
            ("densenet121", 64, [7_899_787_200, 3_581_589_184, 3_269_425_088, 1_189_939_136]),
        ]
        let replayed: [MemoryPolicy] = [.naive, .checkpoint, .shared, .minimal]
        for e in expected {
            let plans = try MemoryPlanner.plans(ModelZoo.configuration(named: e.model), batch: e.batch, policies: replayed,
                                                threads: 2)
            XCTAssertEqual(plans.map(\.peakBytes), e.peaks, "\(e.model) batch \(e.batch)")
        }
        // What the forward pass keeps and its own peak (naive, checkpoint, shared, minimal), the
        // replay's figures too: they are read between the loss and the backward pass.
        let bc100 = try MemoryPlanner.plans(ModelZoo.configuration(named: "densenet-bc-100-12"), batch: 64,
                                            policies: replayed, threads: 2)
        XCTAssertEqual(bc100.map(\.activationBytes), [2_126_995_904, 707_314_624, 629_629_376, 82_071_872])
        XCTAssertEqual(bc100.map(\.forwardPeakBytes), [2_142_720_192, 723_038_912, 647_741_632, 151_920_192])
    }

    /// A dry run allocates no tensor byte of the process, even for a model whose naive step
    /// would need 142 GiB, and leaves the weight and dropout seed streams where they were.
    func testPlanningAllocatesNothingAndLeavesTheSeedsAlone() throws {
        let configuration = try ModelZoo.configuration(named: "densenet-bc-1000-12")
        Initialization.seed = 1234
        Autograd.dropoutSeed = 5678
        Memory.resetPeak()
        let before = Memory.snapshot()
        let naive = try MemoryPlanner.plan(configuration, batch: 64, policy: .naive, threads: 2)
        let minimal = try MemoryPlanner.plan(configuration, batch: 64, policy: .minimal, threads: 2)
        let after = Memory.snapshot()
        XCTAssertEqual(after.allocationCount, before.allocationCount, "the dry run made real storages")
        XCTAssertEqual(after.peak, before.peak)
        XCTAssertEqual(after.active, before.active)
        XCTAssertEqual(naive.peakBytes, 152_502_580_288)    // the replay planner's figure
        XCTAssertEqual(minimal.peakBytes, 2_518_140_736)
        XCTAssertEqual(Initialization.seed, 1234)
        XCTAssertEqual(Autograd.dropoutSeed, 5678)
        XCTAssertFalse(DryRun.isActive)
    }

    /// Tensors made in a dry run are virtual and counted in its ledger only; they free their
    /// bytes there when released, whenever that is.
    func testDryRunLedgerCountsVirtualStorages() {
        let before = Memory.snapshot()
        var kept: Tensor?
        let (_, dryRun) = DryRun.run(threads: 1) { dryRun in
            let a = Tensor(shape: [1000], category: .activations)
            let b = Tensor.randomNormal([10, 10], seed: 1, category: .parameters)
            XCTAssertTrue(a.isVirtual && b.isVirtual)
            XCTAssertEqual(a.array, [Float](repeating: 0, count: 1000))
            XCTAssertEqual(dryRun.ledger.total, Memory.byteCount(elements: 1000) + Memory.byteCount(elements: 100))
            dryRun.scratch(4096)
            kept = b
        }
        XCTAssertEqual(dryRun.ledger.total, Memory.byteCount(elements: 100))
        XCTAssertEqual(dryRun.ledger.peak, Memory.byteCount(elements: 1000) + Memory.byteCount(elements: 100) + 4096)
        XCTAssertEqual(dryRun.ledger.peak(.scratch), 4096)
        kept = nil
        XCTAssertNil(kept)
        XCTAssertEqual(dryRun.ledger.total, 0)
        XCTAssertEqual(Memory.snapshot().allocationCount, before.allocationCount)
        XCTAssertFalse(Tensor(shape: [4]).isVirtual, "outside the dry run tensors are real again")
    }

    /// The plan names where its peak falls, from the modules the real code ran.
    func testPeakPhaseNamesTheModule() throws {
        let plan = try MemoryPlanner.plan(ModelZoo.configuration(named: "densenet-bc-100-12"), batch: 64,
                                          policy: .checkpoint, threads: 1)
        // Since no checkpointed layer concatenates its inputs, the peak is where the backward
        // pass starts: everything the forward kept, and the first gradients.
        XCTAssertEqual(plan.peakPhase, "backward avgpool")
    }

    /// A policy that is no preset is planned exactly too, and computes the same as naive.
    /// DenseNet-121 at batch 8 on 16 threads: the last block's products (392 columns) ran on one
    /// thread each before the grid split, bounding the products' speedup at 7.9x; every product
    /// now splits. On one thread the bound is 1.
    func testProductSplitsUseEveryThread() throws {
        let c = try ModelZoo.configuration(named: "densenet121")
        let wide = try MemoryPlanner.plan(c, batch: 8, policy: .naive, threads: 16)
        XCTAssertGreaterThan(wide.productSpeedupBound, 15.5)
        let one = try MemoryPlanner.plan(c, batch: 8, policy: .naive, threads: 1)
        XCTAssertEqual(one.productSpeedupBound, 1)
        // Forward, input gradient and weight gradient of 5.21 GFLOP per example each, less the
        // stem conv's input gradient (3→64, 7x7, 112x112 outputs: 2·64·147·12544 FLOPs).
        XCTAssertEqual(one.productFLOPs / 8, 3 * 5.21e9 - 2 * 64 * 147 * 12544, accuracy: 0.03e9)
    }

    func testCustomPolicyIsExactAndEquivalent() throws {
        let policy = try MemoryPolicy(named: "shared-concatenation+recompute-bottleneck")
        XCTAssertEqual(policy, MemoryPolicy(sharedConcatenation: true, recomputeBottleneck: true))
        let c = DenseNetConfiguration(name: "custom", growthRate: 4, blockConfig: [3, 2], initialFeatures: 8,
                                      bottleneckFactor: 2, compression: 0.5, classCount: 3,
                                      inputShape: FeatureShape(channels: 2, height: 12, width: 12), stem: .cifar)
        let savedThreads = Parallel.threadCount
        Parallel.threadCount = 1
        defer { Parallel.threadCount = savedThreads }
        let plan = try MemoryPlanner.plan(.denseNet(c), batch: 5, policy: policy, threads: 1)
        let before = Memory.active
        let step = try TrainingStep(.denseNet(c), batch: 5, policy: policy)
        Memory.resetPeak()
        step.run()
        XCTAssertEqual(Memory.peak - before, plan.peakBytes)
        let naive = try TrainingStep(.denseNet(c), batch: 5, policy: .naive)
        naive.run()
        let gradients = step.model.parameters.flatMap(\.grad.array)
        let naiveGradients = naive.model.parameters.flatMap(\.grad.array)
        XCTAssertEqual(gradients.count, naiveGradients.count)
        XCTAssertGreaterThan(naiveGradients.map(abs).max() ?? 0, 1e-3)
        for (x, y) in zip(gradients, naiveGradients) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
    }
}

/// `MemoryPolicy` as data: presets, names, parsing, and what each family honours.
final class MemoryPolicyTests: XCTestCase {
    func testPresetsAreTheirFields() {
        XCTAssertEqual(MemoryPolicy.naive, MemoryPolicy())
        XCTAssertEqual(MemoryPolicy.checkpoint, MemoryPolicy(checkpointLayers: true))
        XCTAssertEqual(MemoryPolicy.sharedConcatenation, MemoryPolicy(sharedConcatenation: true))
        XCTAssertEqual(MemoryPolicy.shared, MemoryPolicy(sharedConcatenation: true, sharedNormalization: true))
        XCTAssertEqual(MemoryPolicy.minimal, MemoryPolicy(sharedConcatenation: true, sharedNormalization: true,
                                                          recomputeBottleneck: true, checkpointLayers: true,
                                                          recomputeStemAndTransitions: true))
        XCTAssertEqual(MemoryPolicy.fused, MemoryPolicy(sharedConcatenation: true, sharedNormalization: true,
                                                        fuseNormalization: true, recomputeBottleneck: true,
                                                        checkpointLayers: true, recomputeStemAndTransitions: true))
        XCTAssertEqual(MemoryPolicy.ladder.map(\.policy.name),
                       ["naive", "checkpoint", "shared-concat", "shared", "minimal", "fused"])
    }

    func testNamesParseAndRoundTrip() throws {
        for (name, policy) in MemoryPolicy.presets {
            XCTAssertEqual(try MemoryPolicy(named: name), policy)
            XCTAssertEqual(policy.name, name)
        }
        let custom = try MemoryPolicy(named: "Shared + recompute-bottleneck")
        XCTAssertEqual(custom, MemoryPolicy(sharedConcatenation: true, sharedNormalization: true, recomputeBottleneck: true))
        XCTAssertEqual(custom.name, "shared-concatenation+shared-normalization+recompute-bottleneck")
        XCTAssertEqual(try MemoryPolicy(named: custom.name), custom)
        let json = try JSONEncoder().encode([custom, .minimal])
        XCTAssertEqual(String(decoding: json, as: UTF8.self),
                       #"["shared-concatenation+shared-normalization+recompute-bottleneck","minimal"]"#)
        XCTAssertEqual(try JSONDecoder().decode([MemoryPolicy].self, from: json), [custom, .minimal])
        XCTAssertThrowsError(try MemoryPolicy(named: "sharde")) { error in
            XCTAssertTrue("\(error)".contains("unknown memory strategy 'sharde'"), "\(error)")
            XCTAssertTrue("\(error)".contains("minimal"), "\(error)")
        }
        XCTAssertThrowsError(try MemoryPolicy(named: "shared+"))
    }

    func testWhatEachFamilyHonours() {
        let all = MemoryPolicy.minimal
        XCTAssertEqual(all.honoured(by: .denseNet), MemoryPolicy(sharedConcatenation: true, sharedNormalization: true,
                                                                 recomputeBottleneck: true, recomputeStemAndTransitions: true))
        XCTAssertEqual(MemoryPolicy.checkpoint.honoured(by: .denseNet), .checkpoint)
        XCTAssertEqual(MemoryPolicy(sharedNormalization: true).honoured(by: .denseNet), .naive,
                       "shared BN storage needs the block buffer")
        XCTAssertEqual(all.honoured(by: .resNet), MemoryPolicy(checkpointLayers: true, recomputeStemAndTransitions: true))
        XCTAssertEqual(MemoryPolicy.shared.honoured(by: .resNet), .naive)
        XCTAssertEqual(all.honoured(by: .denseMLP), MemoryPolicy(sharedConcatenation: true, checkpointLayers: true))
        XCTAssertEqual(all.honoured(by: .plainMLP), .naive)
    }
}

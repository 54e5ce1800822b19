import Autograd
@testable import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// Every memory strategy computes the same function: same logits, loss, parameter gradients
/// and running statistics as the naive model, for the same weights and input. Fresh gradient
/// buffers start as NaN here (`Autograd.poisonsFreshGradients`), so a backward that was to write
/// one whole and left part of it shows as NaN (never equal, not even to itself).
final class StrategyEquivalenceTests: XCTestCase {
    override func setUp() { Autograd.poisonsFreshGradients = true }
    override func tearDown() { Autograd.poisonsFreshGradients = false }

    struct StepResult {
        var logits: [Float]
        var loss: Float
        var gradients: [[Float]]
        var buffers: [[Float]]
    }

    static func step(_ configuration: DenseNetConfiguration, _ strategy: MemoryPolicy, batch: Int,
                     training: Bool = true) throws -> StepResult {
        Initialization.seed = 1234
        Autograd.dropoutSeed = 99
        let model = try DenseNet(configuration, policy: strategy)
        if !training { model.eval() }
        let shape = configuration.inputShape
        let x = Tensor.randomNormal([shape.channels, batch, shape.height, shape.width], seed: 7)
        let labels = (0..<batch).map { Int32($0 % configuration.classCount) }
        let logits = model(Variable(x))
        let loss = Functional.crossEntropy(logits, labels: labels)
        loss.backward()
        return StepResult(logits: logits.value.array, loss: loss.value.array[0],
                          gradients: model.parameters.map { $0.grad.array },
                          buffers: model.namedBuffers().map { $0.tensor.array })
    }

    static func assertSame(_ a: StepResult, _ b: StepResult, _ label: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(b.logits, a.logits), 1e-4, "\(label): logits", file: file, line: line)
        XCTAssertEqual(b.loss, a.loss, accuracy: 1e-4 * max(1, abs(a.loss)), "\(label): loss", file: file, line: line)
        XCTAssertEqual(a.gradients.count, b.gradients.count)
        for (i, (ga, gb)) in zip(a.gradients, b.gradients).enumerated() {
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(gb, ga), 1e-4, "\(label): gradient \(i)", file: file, line: line)
        }
        for (i, (ra, rb)) in zip(a.buffers, b.buffers).enumerated() {
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(rb, ra), 1e-4, "\(label): running statistics \(i)", file: file, line: line)
        }
    }

    /// Small models: a CIFAR DenseNet-BC, one with dropout, an ImageNet-stem one, and a
    /// textbook-style one without bottleneck and with conv bias.
    static let configurations: [DenseNetConfiguration] = [
        DenseNetConfiguration(name: "bc-small", growthRate: 4, blockConfig: [3, 2], initialFeatures: 8,
                              bottleneckFactor: 4, compression: 0.5, classCount: 5,
                              inputShape: FeatureShape(channels: 3, height: 8, width: 8), stem: .cifar),
        DenseNetConfiguration(name: "bc-dropout", growthRate: 3, blockConfig: [2, 3], initialFeatures: 6,
                              bottleneckFactor: 2, compression: 0.5, dropRate: 0.2, classCount: 4,
                              inputShape: FeatureShape(channels: 3, height: 6, width: 6), stem: .cifar),
        DenseNetConfiguration(name: "imagenet-stem", growthRate: 4, blockConfig: [2, 2], initialFeatures: 8,
                              bottleneckFactor: 4, compression: 0.5, classCount: 6,
                              inputShape: FeatureShape(channels: 3, height: 20, width: 20), stem: .imagenet),
        DenseNetConfiguration(name: "textbook-style", growthRate: 5, blockConfig: [2, 2], initialFeatures: 8,
                              bottleneckFactor: nil, compression: 0.5, classCount: 3,
                              inputShape: FeatureShape(channels: 1, height: 16, width: 16), convBias: true,
                              stem: .imagenet),
    ]

    /// The presets (`fused` among them) and `shared` with the fused BN/ReLU path (`fused-normalization`).
    static let policies: [MemoryPolicy] = {
        var sharedFused = MemoryPolicy.shared
        sharedFused.fuseNormalization = true
        return MemoryPolicy.allPresets + [sharedFused]
    }()

    /// The fused path on one and three threads, whose tiles differ (one per thread where the
    /// positions are few), in training and evaluation: its BN1/ReLU gradient taken tile by tile,
    /// and in training the norm1s' statistics parts added up across the layers and applied once
    /// per channel (DenseBlock+SharedStorage.swift).
    func testFusedPathOnSeveralThreadCountsAgrees() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        for configuration in Self.configurations.prefix(3) {
            for training in [true, false] {
                Parallel.threadCount = 1
                let naive = try Self.step(configuration, .naive, batch: 3, training: training)
                for threads in [1, 3] {
                    Parallel.threadCount = threads
                    for strategy in Self.policies where strategy.fuseNormalization {
                        Self.assertSame(naive, try Self.step(configuration, strategy, batch: 3, training: training),
                                        "\(configuration.name)/\(strategy)/\(threads) threads/\(training ? "train" : "eval")")
                    }
                }
            }
        }
    }

    /// Where a strategy runs the same products on the same shapes as naive (all but the fused
    /// path, whose 1x1 products run tile by tile), its numbers are naive's bit for bit: logits,
    /// loss, gradients and running statistics. The shared blocks take the batch statistics of
    /// each layer's input prefix from the previous layer (BatchNormState.statistics(knownPrefix:)):
    /// the same numbers, not an approximation of them.
    func testUnfusedStrategiesAreNaiveBitForBit() throws {
        for configuration in Self.configurations {
            let naive = try Self.step(configuration, .naive, batch: 3)
            for strategy in [MemoryPolicy.checkpoint, .sharedConcatenation, .shared, .minimal] {
                let other = try Self.step(configuration, strategy, batch: 3)
                XCTAssertEqual(other.logits, naive.logits, "\(configuration.name)/\(strategy): logits")
                XCTAssertEqual(other.buffers, naive.buffers, "\(configuration.name)/\(strategy): running statistics")
                XCTAssertEqual(other.gradients, naive.gradients, "\(configuration.name)/\(strategy): gradients")
            }
        }
    }

    func testAllStrategiesAgreeInTraining() throws {
        for configuration in Self.configurations {
            let naive = try Self.step(configuration, .naive, batch: 3)
            for strategy in Self.policies where strategy != .naive {
                Self.assertSame(naive, try Self.step(configuration, strategy, batch: 3), "\(configuration.name)/\(strategy)")
            }
        }
    }

    func testAllStrategiesAgreeInEvaluation() throws {
        for configuration in Self.configurations {
            let naive = try Self.step(configuration, .naive, batch: 2, training: false)
            for strategy in Self.policies where strategy != .naive {
                Self.assertSame(naive, try Self.step(configuration, strategy, batch: 2, training: false),
                                "\(configuration.name)/\(strategy)/eval")
            }
        }
    }

    /// Running statistics after one training step are one momentum update from the defaults
    /// (mean 0, var 1), under every strategy: checked against the batch statistics of the
    /// stem's output computed here directly.
    func testRunningStatisticsAreUpdatedOnce() throws {
        let configuration = Self.configurations[0]
        for strategy in Self.policies {
            Initialization.seed = 1234
            let model = try DenseNet(configuration, policy: strategy)
            let x = Tensor.randomNormal([3, 3, 8, 8], seed: 7)
            let loss = Functional.crossEntropy(model(Variable(x)), labels: [0, 1, 2])
            loss.backward()
            // First layer's norm1 sees the stem conv output; recompute its batch mean here.
            let conv0 = try XCTUnwrap(model.namedParameters().first { $0.name == "features.conv0.weight" }?.parameter)
            let stem = Tensor(shape: [8, 3, 8, 8])
            Conv2d.forwardReference(x, weight: conv0.value, bias: nil, ConvParameters(kernel: 3, padding: 1), into: stem)
            let norm1 = model.blocks[0].layers[0].norm1
            for c in 0..<8 {
                let row = stem.channels(c..<(c + 1)).array
                let mean = row.reduce(0, +) / Float(row.count)
                XCTAssertEqual(norm1.runningMean.array[c], 0.1 * mean, accuracy: 1e-5, "\(strategy) channel \(c)")
            }
            XCTAssertEqual(norm1.batchesTracked, 1, "\(strategy)")
        }
    }
}

/// How stored bytes grow with depth: linear (constant per layer) for `shared`, `minimal` (and
/// `checkpoint`, which keeps a constant bottleneck per layer), quadratic (growing per layer) for
/// `naive`. Measured on the runtime's counted bytes kept after the forward pass of single-block
/// models. "Constant" allows for the per-channel batch statistics (c_l floats per layer, a few
/// percent of a layer's maps at this tiny size, far less at real ones).
final class MemoryGrowthTests: XCTestCase {
    func keptBytes(layers: Int, _ strategy: MemoryPolicy) throws -> Int {
        let configuration = DenseNetConfiguration(name: "growth", growthRate: 4, blockConfig: [layers], initialFeatures: 8,
                                                  bottleneckFactor: 4, compression: 0.5, classCount: 2,
                                                  inputShape: FeatureShape(channels: 3, height: 16, width: 16), stem: .cifar)
        let model = try DenseNet(configuration, policy: strategy)
        let x = Tensor.randomNormal([3, 4, 16, 16], seed: 1)
        let before = Memory.active(.activations) + Memory.active(.scratch)
        let logits = model(Variable(x))
        let kept = Memory.active(.activations) + Memory.active(.scratch) - before
        withExtendedLifetime(logits) {}
        return kept
    }

    func testStoredBytesPerLayer() throws {
        let depths = [4, 8, 12, 16]
        for strategy in MemoryPolicy.allPresets {
            let kept = try depths.map { try keptBytes(layers: $0, strategy) }
            let increments = zip(kept.dropFirst(), kept).map { $0 - $1 }
            let second = zip(increments.dropFirst(), increments).map { $0 - $1 }
            let smallest = Double(increments.min() ?? 0)
            XCTAssertGreaterThan(smallest, 0, "\(strategy): deeper models keep more, increments \(increments)")
            if [MemoryPolicy.shared, .minimal, .fused, .checkpoint].contains(strategy) {
                XCTAssertTrue(second.allSatisfy { abs(Double($0)) <= 0.05 * smallest },
                              "\(strategy): per-layer bytes must be constant, increments \(increments)")
            } else {   // naive, and shared-concat (each layer keeps its own BN/ReLU output)
                XCTAssertTrue(second.allSatisfy { Double($0) >= 0.2 * smallest },
                              "\(strategy): per-layer bytes must grow with depth, increments \(increments)")
            }
        }
    }
}

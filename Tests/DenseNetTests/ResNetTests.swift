import Autograd
@testable import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// The d2l ResNet baseline: counts and names against the Architecture and the published
/// figure, shapes, gradients against finite differences, and every strategy against naive.
final class ResNetTests: XCTestCase {
    /// stem 4, stages [4, 8] of one block each, 1x12x12, 3 classes: 12 → conv 6 → pool 3 →
    /// stage 1 (identity) 3 → stage 2 (stride 2, projection) 2.
    static let tiny = ResNetConfiguration(name: "resnet-tiny", stemChannels: 4, stageChannels: [4, 8],
                                          blocksPerStage: [1, 1], classCount: 3,
                                          inputShape: FeatureShape(channels: 1, height: 12, width: 12))

    func testResNet18CountsNamesAndShapes() throws {
        Initialization.seed = 3
        let configuration = try ModelZoo.configuration(named: "resnet18")
        let architecture = try Architecture(configuration)
        let model = try ModelFactory.build(configuration)
        XCTAssertTrue(model is ResNet)
        XCTAssertEqual(model.parameterCount, 11_178_378)   // densenet-facts.md
        XCTAssertEqual(model.parameterCount, architecture.trainableParameters)
        XCTAssertEqual(model.bufferCount, architecture.nonTrainableParameters)
        assertTensorsMatch(model, architecture)
        // torchvision's names, written out: the stem, a projection, the head.
        let shapes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes["conv1.weight"], [64, 1, 7, 7])
        XCTAssertEqual(shapes["conv1.bias"], [64])
        XCTAssertEqual(shapes["bn1.weight"], [64])
        XCTAssertEqual(shapes["layer1.1.conv2.weight"], [64, 64, 3, 3])
        XCTAssertEqual(shapes["layer2.0.conv1.weight"], [128, 64, 3, 3])
        XCTAssertEqual(shapes["layer2.0.downsample.0.weight"], [128, 64, 1, 1])
        XCTAssertEqual(shapes["layer2.0.downsample.0.bias"], [128])
        XCTAssertEqual(shapes["layer4.1.bn2.bias"], [512])
        XCTAssertEqual(shapes["fc.weight"], [10, 512])
        XCTAssertNil(shapes["layer1.0.downsample.0.weight"], "stage 1 keeps width and resolution: identity")
        XCTAssertNil(shapes["layer2.1.downsample.0.weight"])
        XCTAssertEqual(model.namedParameters().filter { $0.name.contains("downsample") }.count, 6)
        XCTAssertEqual(model.modelConfiguration, configuration)
    }

    func testForwardShapes() throws {
        Initialization.seed = 4
        // resnet18 on 1x32x32: 32 → 16 → 8 → 8 → 4 → 2 → 1, logits (10, N).
        let model = try ModelFactory.build(named: "resnet18", input: "1x32x32")
        let y = Autograd.withoutGradient { model(Variable(Tensor.randomNormal([1, 2, 32, 32], seed: 1))) }
        XCTAssertEqual(y.shape, [10, 2])
        XCTAssertTrue(y.value.array.allSatisfy { $0.isFinite })
        let tiny = try ResNet(Self.tiny)
        XCTAssertEqual(tiny(Variable(Tensor.randomNormal([1, 3, 12, 12], seed: 2))).shape, [3, 3])
        XCTAssertEqual(tiny.stages.map { $0.map(\.projection).map { $0 != nil } }, [[false], [true]])
    }

    /// With bn2's γ and β zero the residual branch adds nothing, so a block outputs
    /// ReLU(shortcut): ReLU(x) for an identity block, ReLU(1x1 stride-2 conv(x) + bias) for a
    /// projection block, computed here with the reference kernels.
    func testBlockAddsTheShortcut() throws {
        Initialization.seed = 15
        let x = Tensor.randomNormal([4, 2, 5, 5], seed: 16)
        let identity = BasicBlock(inputWidth: 4, outputWidth: 4, stride: 1, projection: false, convBias: true)
        let projected = BasicBlock(inputWidth: 4, outputWidth: 6, stride: 2, projection: true, convBias: true)
        for block in [identity, projected] {
            block.bn2.weight.value.zero()
            block.bn2.bias.value.zero()
            var shortcut = x
            if let p = block.projection {
                shortcut = Tensor(shape: [6, 2, 3, 3])
                Conv2d.forwardReference(x, weight: p.weight.value, bias: p.bias?.value,
                                        ConvParameters(kernel: 1, stride: 2), into: shortcut)
            }
            let expected = shortcut.array.map { max($0, 0) }
            let y = block(Variable(x))
            XCTAssertEqual(y.shape, shortcut.shape)
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(y.value.array, expected), 1e-5)
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        Initialization.seed = 5
        let model = try ResNet(Self.tiny)
        let x = Tensor.randomNormal([1, 2, 12, 12], seed: 6)
        let weights = lossWeights(3 * 2, seed: 7)
        let step = NetworkStep(model, x, weights: weights)
        let loss = { GradientCheck.weightedSum(Autograd.withoutGradient { model(Variable(x)) }.value, weights) }
        assertGradient(step.inputGradient, of: x, "input", loss)
        let named = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter) })
        for name in ["conv1.weight", "bn1.weight", "layer1.0.conv2.bias", "layer2.0.conv1.weight",
                     "layer2.0.bn2.bias", "layer2.0.downsample.0.weight", "fc.weight"] {
            let p = try XCTUnwrap(named[name], name)
            // The first output channel (row) of each: enough to exercise every path, and fast.
            let rows = 0..<1
            assertGradient(p.grad.narrow(0, rows).array, of: p.value.narrow(0, rows), name, loss)
        }
    }

    func testEveryStrategyMatchesNaive() throws {
        let x = Tensor.randomNormal([1, 3, 12, 12], seed: 8)
        let weights = lossWeights(3 * 3, seed: 9)
        for training in [true, false] {
            func step(_ strategy: MemoryPolicy) throws -> NetworkStep {
                Initialization.seed = 10
                let model = try ModelFactory.build(.resNet(Self.tiny), policy: strategy)
                if !training { model.eval() }
                return NetworkStep(model, x, weights: weights)
            }
            let naive = try step(.naive)
            for strategy in MemoryPolicy.allPresets where strategy != .naive {
                try step(strategy).assertSame(as: naive, "\(strategy) training \(training)")
            }
        }
    }

    /// Running statistics move once per training step under every strategy (the checkpoint
    /// recompute must not update them again) and `num_batches_tracked` counts 1.
    func testCheckpointedBlocksUpdateRunningStatisticsOnce() throws {
        for strategy in MemoryPolicy.allPresets {
            Initialization.seed = 11
            let model = try ResNet(Self.tiny, policy: strategy)
            _ = NetworkStep(model, Tensor.randomNormal([1, 2, 12, 12], seed: 12), weights: lossWeights(6, seed: 1))
            for (s, blocks) in model.stages.enumerated() {
                for block in blocks {
                    XCTAssertEqual(block.bn1.batchesTracked, 1, "\(strategy) stage \(s + 1)")
                    XCTAssertEqual(block.bn2.batchesTracked, 1, "\(strategy) stage \(s + 1)")
                }
            }
            XCTAssertEqual(model.bn1.batchesTracked, 1, "\(strategy) stem")
        }
    }

    /// Checkpointing the blocks keeps fewer activation bytes after the forward pass.
    func testCheckpointKeepsLessThanNaive() throws {
        func kept(_ strategy: MemoryPolicy) throws -> Int {
            Initialization.seed = 13
            var configuration = Self.tiny
            configuration.blocksPerStage = [3, 3]
            configuration.inputShape = FeatureShape(channels: 1, height: 32, width: 32)
            let model = try ResNet(configuration, policy: strategy)
            let x = Tensor.randomNormal([1, 4, 32, 32], seed: 14)
            let before = Memory.active(.activations) + Memory.active(.scratch)
            let y = model(Variable(x))
            let bytes = Memory.active(.activations) + Memory.active(.scratch) - before
            withExtendedLifetime(y) {}
            return bytes
        }
        let naive = try kept(.naive), checkpoint = try kept(.checkpoint), minimal = try kept(.minimal)
        XCTAssertLessThan(checkpoint, naive / 2, "naive \(naive) B, checkpoint \(checkpoint) B")
        XCTAssertLessThan(minimal, checkpoint, "checkpoint \(checkpoint) B, minimal \(minimal) B")
        // A ResNet has no concatenation: it honours no field of `shared`, which trains it as naive.
        XCTAssertEqual(try kept(.shared), naive)
    }
}

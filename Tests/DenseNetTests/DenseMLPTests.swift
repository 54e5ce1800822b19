import Autograd
@testable import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// The DenseNet-style MLP: counts and names against the Architecture and the hand count,
/// both input layouts, gradients against finite differences, every strategy against naive.
final class DenseMLPTests: XCTestCase {
    /// 3 features, k = 4, blocks of 2 and 3 layers with a transition (11 → 5), 2 outputs.
    static func tiny(batchNorm: Bool) -> DenseMLPConfiguration {
        DenseMLPConfiguration(name: "mlp-tiny", inputFeatures: 3, growthRate: 4, blockConfig: [2, 3],
                              compression: 0.5, batchNorm: batchNorm, outputCount: 2)
    }

    func testDefaultCountsNamesAndShapes() throws {
        Initialization.seed = 21
        let configuration = try ModelZoo.configuration(named: "dense-mlp")
        let model = try ModelFactory.build(configuration)
        XCTAssertTrue(model is DenseMLP)
        XCTAssertEqual(model.parameterCount, 7_691)   // Σ (10 + 32i)·32 + 32, i < 4, + 138 + 1
        XCTAssertEqual(model.parameterCount, try Architecture(configuration).trainableParameters)
        assertTensorsMatch(model, try Architecture(configuration))
        let shapes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes["features.denseblock1.denselayer1.fc.weight"], [32, 10])
        XCTAssertEqual(shapes["features.denseblock1.denselayer4.fc.weight"], [32, 106])
        XCTAssertEqual(shapes["output.weight"], [1, 138])
        XCTAssertEqual(shapes["output.bias"], [1])
        XCTAssertEqual(model.bufferCount, 0)
    }

    func testTinyWithBatchNormAndTransition() throws {
        let configuration = Self.tiny(batchNorm: true)
        let architecture = try Architecture(.denseMLP(configuration))
        let model = try DenseMLP(configuration)
        assertTensorsMatch(model, architecture)
        // By hand: block 1 fc 3→4, 7→4 (+BN 2·4 each); transition 11 → 5; block 2 fc 5→4,
        // 9→4, 13→4 (+BN); output 17 → 2.
        let fc = [3, 7, 5, 9, 13].map { ($0 + 1) * 4 }.reduce(0, +)
        XCTAssertEqual(model.parameterCount, fc + 5 * 8 + (11 + 1) * 5 + (17 + 1) * 2)
        XCTAssertEqual(model.parameterCount, architecture.trainableParameters)
        XCTAssertEqual(model.bufferCount, 5 * 8)
    }

    func testBothInputLayoutsGiveTheSameOutput() throws {
        Initialization.seed = 22
        let model = try ModelFactory.build(named: "dense-mlp")
        let x = Tensor.randomNormal([10, 5], seed: 1)
        let flat = model(Variable(x))
        let image = model(Variable(x.reshaped([10, 5, 1, 1])))
        XCTAssertEqual(flat.shape, [1, 5])
        XCTAssertEqual(image.shape, [1, 5])
        XCTAssertEqual(flat.value.array, image.value.array)
        // The gradient reaches a (F, N, 1, 1) input in its own shape.
        let x4 = x.copy().reshaped([10, 5, 1, 1])
        let step = NetworkStep(model, x4, weights: lossWeights(5, seed: 2))
        let step2 = NetworkStep(model, x, weights: lossWeights(5, seed: 2))
        XCTAssertEqual(step.inputGradient, step2.inputGradient)
    }

    /// A block's output is its input, then each layer's ReLU(W·[all earlier rows] + b), in
    /// order: recomputed here row block by row block with the reference linear kernel, for
    /// every strategy.
    func testBlockConcatenatesInputAndLayerOutputs() throws {
        let x = Tensor.randomNormal([3, 5], seed: 31)
        for strategy in MemoryPolicy.allPresets {
            Initialization.seed = 32
            let block = DenseMLPBlock(layerCount: 3, inputWidth: 3, growthRate: 2, batchNorm: false, policy: strategy)
            let y = block(Variable(x)).value
            XCTAssertEqual(y.shape, [9, 5])
            var expected = x.array
            for layer in block.layers {
                let c = layer.inputWidth
                let z = Tensor(shape: [2, 5])
                Linear.forwardReference(Tensor(shape: [c, 5], values: expected), weight: layer.fc.weight.value,
                                        bias: layer.fc.bias?.value, into: z)
                expected += z.array.map { max($0, 0) }
            }
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(y.array, expected), 1e-5, "\(strategy)")
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        for batchNorm in [false, true] {
            Initialization.seed = 23
            let model = try DenseMLP(Self.tiny(batchNorm: batchNorm))
            let x = Tensor.randomNormal([3, 6], seed: 24)
            let weights = lossWeights(2 * 6, seed: 25)
            let step = NetworkStep(model, x, weights: weights)
            let loss = { GradientCheck.weightedSum(Autograd.withoutGradient { model(Variable(x)) }.value, weights) }
            assertGradient(step.inputGradient, of: x, "input (BN \(batchNorm))", loss)
            var names = ["features.denseblock1.denselayer1.fc.weight", "features.denseblock2.denselayer3.fc.weight",
                         "features.transition1.fc.weight", "features.transition1.fc.bias", "output.weight", "output.bias"]
            if batchNorm { names += ["features.denseblock1.denselayer2.norm.weight", "features.denseblock2.denselayer1.norm.bias"] }
            let named = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter) })
            for name in names {
                let p = try XCTUnwrap(named[name], name)
                assertGradient(p.grad.array, of: p.value, "\(name) (BN \(batchNorm))", loss)
            }
        }
    }

    func testEveryStrategyMatchesNaive() throws {
        let x = Tensor.randomNormal([3, 7], seed: 26)
        let weights = lossWeights(2 * 7, seed: 27)
        for batchNorm in [false, true] {
            for training in [true, false] {
                func step(_ strategy: MemoryPolicy) throws -> NetworkStep {
                    Initialization.seed = 28
                    let model = try ModelFactory.build(.denseMLP(Self.tiny(batchNorm: batchNorm)), policy: strategy)
                    if !training { model.eval() }
                    return NetworkStep(model, x, weights: weights)
                }
                let naive = try step(.naive)
                for strategy in MemoryPolicy.allPresets where strategy != .naive {
                    try step(strategy).assertSame(as: naive, "\(strategy) BN \(batchNorm) training \(training)")
                }
            }
        }
    }

    /// Setting the policy after building reaches every block, as the part an MLP honours.
    func testPolicyPropagates() throws {
        let model = try DenseMLP(Self.tiny(batchNorm: false))
        model.policy = .minimal
        let honoured = MemoryPolicy(sharedConcatenation: true, checkpointLayers: true)
        XCTAssertEqual(model.blocks.map(\.policy), [honoured, honoured])
    }

    /// Kept bytes after the forward pass of a deep block: the shared buffer removes the
    /// quadratic concatenations, and checkpointing every layer keeps less again.
    func testSharedBufferKeepsLessThanNaive() throws {
        func kept(_ strategy: MemoryPolicy) throws -> Int {
            Initialization.seed = 29
            let configuration = DenseMLPConfiguration(inputFeatures: 8, growthRate: 8, blockConfig: [16])
            let model = try DenseMLP(configuration, policy: strategy)
            let x = Tensor.randomNormal([8, 32], seed: 30)
            let before = Memory.active(.activations) + Memory.active(.scratch)
            let y = model(Variable(x))
            let bytes = Memory.active(.activations) + Memory.active(.scratch) - before
            withExtendedLifetime(y) {}
            return bytes
        }
        let naive = try kept(.naive), checkpoint = try kept(.checkpoint)
        let shared = try kept(.shared), minimal = try kept(.minimal)
        let figures = "naive \(naive), checkpoint \(checkpoint), shared \(shared), minimal \(minimal) bytes"
        XCTAssertLessThan(shared, naive / 2, figures)
        XCTAssertLessThan(checkpoint, naive / 2, figures)
        XCTAssertLessThan(minimal, shared, figures)
    }
}

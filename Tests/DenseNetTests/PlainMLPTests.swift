import Autograd
@testable import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// The plain MLP the dense one is compared with (`mlp`): counts by hand, names against the
/// Architecture, the forward pass against the reference linear kernel, gradients against
/// finite differences.
final class PlainMLPTests: XCTestCase {
    /// 3 features, 4 units, blocks [1, 2] = 3 hidden layers in a row, 2 outputs.
    static func tiny(batchNorm: Bool) -> DenseMLPConfiguration {
        DenseMLPConfiguration(name: "plain-tiny", inputFeatures: 3, growthRate: 4, blockConfig: [1, 2],
                              batchNorm: batchNorm, outputCount: 2, denseConnections: false)
    }

    func testZooMLPCountsNamesAndShapes() throws {
        Initialization.seed = 41
        let configuration = try ModelZoo.configuration(named: "mlp")
        let model = try ModelFactory.build(configuration)
        XCTAssertTrue(model is PlainMLP)
        // By hand: 10·48 + 48, three times 48·48 + 48, then 48 + 1.
        XCTAssertEqual(model.parameterCount, 528 + 3 * 2_352 + 49)
        XCTAssertEqual(model.parameterCount, 7_633)
        XCTAssertEqual(try Architecture(configuration).trainableParameters, 7_633)
        assertTensorsMatch(model, try Architecture(configuration))
        let shapes = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes["features.layer1.fc.weight"], [48, 10])
        XCTAssertEqual(shapes["features.layer4.fc.weight"], [48, 48])
        XCTAssertEqual(shapes["output.weight"], [1, 48])
        XCTAssertNil(shapes["features.layer5.fc.weight"])
        XCTAssertEqual(model.bufferCount, 0)
        XCTAssertEqual(model(Variable(Tensor.randomNormal([10, 3], seed: 1))).shape, [1, 3])
    }

    func testBatchNormCountsAndMultipleBlocksChainLayers() throws {
        let configuration = Self.tiny(batchNorm: true)
        let model = try PlainMLP(configuration)
        assertTensorsMatch(model, try Architecture(.denseMLP(configuration)))
        // fc 3→4, 4→4, 4→4 with BN (2·4 each); output 4 → 2.
        XCTAssertEqual(model.parameterCount, (3 + 1) * 4 + 2 * (4 + 1) * 4 + 3 * 8 + (4 + 1) * 2)
        XCTAssertEqual(model.bufferCount, 3 * 8)
    }

    /// Each layer is ReLU(W·h + b) of the previous output only, the head W·h + b.
    func testForwardIsAChainOfLinearAndReLU() throws {
        Initialization.seed = 42
        let model = try PlainMLP(Self.tiny(batchNorm: false))
        let x = Tensor.randomNormal([3, 5], seed: 43)
        let y = model(Variable(x)).value
        var h = x
        for layer in model.layers {
            let z = Tensor(shape: [4, 5])
            Linear.forwardReference(h, weight: layer.fc.weight.value, bias: layer.fc.bias?.value, into: z)
            h = Tensor(shape: [4, 5], values: z.array.map { max($0, 0) })
        }
        let out = Tensor(shape: [2, 5])
        Linear.forwardReference(h, weight: model.output.weight.value, bias: model.output.bias?.value, into: out)
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(y.array, out.array), 1e-5)
    }

    func testGradientsMatchFiniteDifferences() throws {
        for batchNorm in [false, true] {
            Initialization.seed = 44
            let model = try PlainMLP(Self.tiny(batchNorm: batchNorm))
            let x = Tensor.randomNormal([3, 6], seed: 45)
            let weights = lossWeights(2 * 6, seed: 46)
            let step = NetworkStep(model, x, weights: weights)
            let loss = { GradientCheck.weightedSum(Autograd.withoutGradient { model(Variable(x)) }.value, weights) }
            assertGradient(step.inputGradient, of: x, "input (BN \(batchNorm))", loss)
            let named = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter) })
            for name in ["features.layer1.fc.weight", "features.layer3.fc.bias", "output.weight", "output.bias"] {
                let p = try XCTUnwrap(named[name], name)
                assertGradient(p.grad.array, of: p.value, "\(name) (BN \(batchNorm))", loss)
            }
        }
    }

    /// The plain flag changes the model, not just its name: dense-mlp's numbers with
    /// denseConnections false make a narrower, smaller network.
    func testDenseFlagChangesTheArchitecture() throws {
        var plain = DenseMLPConfiguration()
        plain.denseConnections = false
        // 10 → 32 ×4 → 1: 352 + 3·1,056 + 33.
        XCTAssertEqual(try Architecture(.denseMLP(plain)).trainableParameters, 352 + 3 * 1_056 + 33)
        XCTAssertEqual(try Architecture(.denseMLP(DenseMLPConfiguration())).trainableParameters, 7_691)
    }
}

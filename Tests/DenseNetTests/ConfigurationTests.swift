import XCTest
@testable import DenseNetModels

/// Validation errors and name/override parsing.
final class ConfigurationTests: XCTestCase {
    /// The error `body` throws, or a failure if it throws none or another type.
    private func error(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> ConfigurationError? {
        do {
            try body()
            XCTFail("expected a ConfigurationError", file: file, line: line)
        } catch let e as ConfigurationError {
            return e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    private func build(_ edit: (inout DenseNetConfiguration) -> Void) throws {
        var c = DenseNetConfiguration()
        edit(&c)
        _ = try Architecture(c)
    }

    func testInvalidNumbersAreRefused() {
        XCTAssertEqual(error { try self.build { $0.growthRate = 0 } }, .invalidGrowthRate(0))
        XCTAssertEqual(error { try self.build { $0.blockConfig = [] } }, .emptyBlockConfig)
        XCTAssertEqual(error { try self.build { $0.blockConfig = [6, 0, 3] } }, .invalidBlockLength(block: 2, layers: 0))
        XCTAssertEqual(error { try self.build { $0.initialFeatures = 0 } }, .invalidWidth(what: "initial features", value: 0))
        XCTAssertEqual(error { try self.build { $0.bottleneckFactor = 0 } }, .invalidBottleneckFactor(0))
        XCTAssertEqual(error { try self.build { $0.compression = 0 } }, .compressionOutOfRange(0))
        XCTAssertEqual(error { try self.build { $0.compression = 1.5 } }, .compressionOutOfRange(1.5))
        XCTAssertEqual(error { try self.build { $0.dropRate = 1 } }, .dropRateOutOfRange(1))
        XCTAssertEqual(error { try self.build { $0.dropRate = -0.1 } }, .dropRateOutOfRange(-0.1))
        XCTAssertEqual(error { try self.build { $0.classCount = 0 } }, .invalidClassCount(0))
        let zero = FeatureShape(channels: 0, height: 32, width: 32)
        XCTAssertEqual(error { try self.build { $0.inputShape = zero } },
                       .invalidInputShape(zero, reason: "every extent of CxHxW must be at least 1"))
        // θ = 1 is valid (no compression); θ = 0.01 leaves no channel after the first block.
        XCTAssertNoThrow(try build { $0.compression = 1 })
        XCTAssertEqual(error { try self.build { $0.compression = 0.001 } },
                       .transitionCollapses(transition: "features.transition1", inputChannels: 256, compression: 0.001))
        // ResNet and MLP validate too.
        XCTAssertNotNil(error { _ = try Architecture(.resNet(ResNetConfiguration(blocksPerStage: [2, 2]))) })
        XCTAssertEqual(error { _ = try Architecture(.denseMLP(DenseMLPConfiguration(growthRate: -1))) }, .invalidGrowthRate(-1))
    }

    func testBadDepthIsRefusedWithTheNearestValidOnes() {
        let e = error { _ = try ModelZoo.configuration(named: "densenet-bc-101-12") }
        XCTAssertEqual(e, .invalidDepth(101, name: "densenet-bc-101-12"))
        XCTAssertTrue(e?.description.contains("100 and 106") ?? false, e?.description ?? "")
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "densenet-bc-4-12") },
                       .invalidDepth(4, name: "densenet-bc-4-12"))
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "densenet-bc-100-0") }, .invalidGrowthRate(0))
        XCTAssertNoThrow(try ModelZoo.configuration(named: "densenet-bc-10-1"))   // n = 1, the smallest
    }

    func testInputTooSmallNamesTheLayerAndTheMinimum() throws {
        let e = error { _ = try Architecture(ModelZoo.configuration(named: "densenet121", input: "3x8x8")) }
        // 8 → conv0 4 → pool0 2 → transition1.pool 1 → transition2.pool refuses a 1x1 input.
        XCTAssertEqual(e, .inputTooSmall(layer: "features.transition2.pool", input: FeatureShape(channels: 3, height: 8, width: 8),
                                         layerInputHeight: 1, layerInputWidth: 1, minimumHeight: 29, minimumWidth: 29))
        XCTAssertTrue(e?.description.contains("at least 29x29") ?? false)
        XCTAssertNoThrow(try Architecture(ModelZoo.configuration(named: "densenet121", input: "3x29x29")))
        XCTAssertNotNil(error { _ = try Architecture(ModelZoo.configuration(named: "densenet121", input: "3x28x224")) })
        // d2l at 1x1: the stem keeps 1x1 (7x7 pad 3, then 3x3 pad 1), the first 2/2 pool refuses it.
        let tiny = error { _ = try Architecture(ModelZoo.configuration(named: "d2l", input: "1x1x1")) }
        if case .inputTooSmall(let layer, _, _, _, let minH, _)? = tiny {
            XCTAssertEqual(layer, "features.transition1.pool")
            // Backwards from a 1x1 output: pools 2/2 need 2, 4, 8; max pool 3/2 p1 (8−1)·2 + 3 − 2
            // = 15; conv0 7/2 p3 (15−1)·2 + 7 − 6 = 29, the same chain as densenet121.
            XCTAssertEqual(minH, 29)
        } else {
            XCTFail("expected inputTooSmall, got \(String(describing: tiny))")
        }
        // ResNet-18 (all strided convs padded, global pool) accepts even a 1x1 input, as PyTorch's.
        XCTAssertEqual(try Architecture(ModelZoo.configuration(named: "resnet18")).minimumInputHeight, 1)
    }

    func testNameParsingAndOverrides() throws {
        guard case .denseNet(let bc) = try ModelZoo.configuration(named: "DenseNet-BC-250-24", classes: 100,
                                                                 input: "3x64x48") else {
            return XCTFail("expected a DenseNet")
        }
        XCTAssertEqual(bc.blockConfig, [41, 41, 41])
        XCTAssertEqual(bc.growthRate, 24)
        XCTAssertEqual(bc.initialFeatures, 48)
        XCTAssertEqual(bc.compression, 0.5)
        XCTAssertEqual(bc.bottleneckFactor, 4)
        XCTAssertEqual(bc.stem, .cifar)
        XCTAssertEqual(bc.classCount, 100)
        XCTAssertEqual(bc.inputShape, FeatureShape(channels: 3, height: 64, width: 48))

        guard case .denseNet(let d121) = try ModelZoo.configuration(named: "densenet121") else { return XCTFail() }
        XCTAssertEqual(d121.inputShape, FeatureShape(channels: 3, height: 224, width: 224))
        XCTAssertEqual(d121.classCount, 1000)
        XCTAssertFalse(d121.convBias)

        guard case .denseMLP(let mlp) = try ModelZoo.configuration(named: "dense-mlp", input: "13") else { return XCTFail() }
        XCTAssertEqual(mlp.inputFeatures, 13)
        guard case .denseMLP(let mlp2) = try ModelZoo.configuration(named: "dense-mlp", input: "8x1x1") else { return XCTFail() }
        XCTAssertEqual(mlp2.inputFeatures, 8)
    }

    func testUnknownAndMalformedNamesAndInputs() {
        let unknown = error { _ = try ModelZoo.configuration(named: "densenet122") }
        XCTAssertEqual(unknown, .unknownModel("densenet122", known: ModelZoo.names + ModelZoo.namePatterns))
        for name in ["densenet121", "densenet-bc-100-12", "d2l", "resnet18", "dense-mlp"] {
            XCTAssertTrue(unknown?.description.contains(name) ?? false, name)
        }
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "densenet-bc-100") },
                       .malformedName("densenet-bc-100", expected: "densenet-bc-L-k with integers L = 6n + 4 and k ≥ 1, e.g. densenet-bc-100-12"))
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "d2l", input: "96x96") },
                       .malformedInput("96x96", expected: "CxHxW (e.g. 3x32x32) for d2l"))
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "d2l", input: "10") },
                       .malformedInput("10", expected: "CxHxW (e.g. 3x32x32) for d2l"))
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "dense-mlp", input: "3x32x32") },
                       .malformedInput("3x32x32", expected: "a feature count F (e.g. 10) for dense-mlp"))
        XCTAssertNotNil(error { _ = try ModelZoo.configuration(named: "d2l", input: "1x0x96") })
        XCTAssertEqual(error { _ = try ModelZoo.configuration(named: "d2l", classes: 0) }, .invalidClassCount(0))
    }

    func testFeatureShapeParsing() {
        XCTAssertEqual(FeatureShape(parsing: "3x224x224"), FeatureShape(channels: 3, height: 224, width: 224))
        XCTAssertEqual(FeatureShape(parsing: " 1 X 96 x 96 "), FeatureShape(channels: 1, height: 96, width: 96))
        XCTAssertEqual(FeatureShape(parsing: "10"), FeatureShape(features: 10))
        XCTAssertNil(FeatureShape(parsing: "3x32"))
        XCTAssertNil(FeatureShape(parsing: "3x32x"))
        XCTAssertNil(FeatureShape(parsing: "threex32x32"))
        XCTAssertEqual(FeatureShape(channels: 3, height: 32, width: 32).description, "3x32x32")
    }
}

import XCTest
@testable import DenseNetModels

/// Exact counts against ../shared/reference/densenet-facts.md (torchvision, Keras, d2l and
/// the original CIFAR DenseNet-BC), and the totals' consistency.
final class ParameterCountTests: XCTestCase {
    private func architecture(_ name: String, classes: Int? = nil, input: String? = nil) throws -> Architecture {
        try Architecture(ModelZoo.configuration(named: name, classes: classes, input: input))
    }

    func testPublishedTrainableParameterCounts() throws {
        let expected: [(String, Int)] = [
            ("densenet121", 7_978_856),
            ("densenet161", 28_681_000),
            ("densenet169", 14_149_480),
            ("densenet201", 20_013_928),
            ("densenet264", 33_337_704),
            ("densenet-bc-100-12", 769_162),
            ("densenet-bc-250-24", 15_324_406),
            ("densenet-bc-190-40", 25_624_430),
            ("densenet-bc-40-12", 176_122),
            ("d2l", 758_226),
            ("resnet18", 11_178_378),
        ]
        for (name, count) in expected {
            XCTAssertEqual(try architecture(name).trainableParameters, count, name)
        }
    }

    func testNonTrainableCountsAreBatchNormRunningStatistics() throws {
        // Keras: DenseNet121 8,062,504 total = 7,978,856 trainable + 83,648 moving statistics.
        let d121 = try architecture("densenet121")
        XCTAssertEqual(d121.nonTrainableParameters, 83_648)
        XCTAssertEqual(d121.totalParameters, 8_062_504)
        // norm0 + 2 per dense layer (58 layers) + 3 transitions + norm5.
        XCTAssertEqual(d121.batchNormLayerCount, 1 + 2 * 58 + 3 + 1)
        // d2l DenseNet, BN widths by hand: norm0 64; block widths 64..160, 96..192, 112..208,
        // 120..216 (4 layers each, +32); transitions 192, 224, 240; norm5 248.
        let d2lChannels = 64 + (64 + 96 + 128 + 160) + 192 + (96 + 128 + 160 + 192) + 224
            + (112 + 144 + 176 + 208) + 240 + (120 + 152 + 184 + 216) + 248
        XCTAssertEqual(try architecture("d2l").nonTrainableParameters, 2 * d2lChannels)
        XCTAssertEqual(2 * d2lChannels, 6_608)
        // ResNet-18: bn1 64, then two BNs per block at the stage width (no BN on projections).
        XCTAssertEqual(try architecture("resnet18").nonTrainableParameters, 2 * (64 + 4 * (64 + 128 + 256 + 512)))
    }

    func testTotalsAreSumsOfLeavesAndCompositesSumTheirChildren() throws {
        for name in ["densenet121", "densenet-bc-40-12", "d2l", "resnet18", "dense-mlp"] {
            let a = try architecture(name)
            XCTAssertEqual(a.trainableParameters, a.leaves.map(\.trainableParameters).reduce(0, +), name)
            // Top-level entries (composites included) partition the model.
            let top = a.layers.filter { $0.depth == 0 }
            XCTAssertEqual(top.map(\.trainableParameters).reduce(0, +), a.trainableParameters, name)
            XCTAssertEqual(top.map(\.nonTrainableParameters).reduce(0, +), a.nonTrainableParameters, name)
            XCTAssertEqual(top.map(\.forwardFLOPs).reduce(0, +), a.forwardFLOPs, name)
        }
        // One dense layer of densenet121 block 1, layer 1 (c = 64, k = 32, bn_size 4), by hand:
        // norm1 2·64, conv1 64·128, norm2 2·128, conv2 128·32·9.
        let a = try architecture("densenet121")
        let layer = try XCTUnwrap(a.layer(named: "features.denseblock1.denselayer1"))
        XCTAssertEqual(layer.trainableParameters, 128 + 64 * 128 + 256 + 128 * 32 * 9)
        XCTAssertEqual(layer.inputShape, FeatureShape(channels: 64, height: 56, width: 56))
        XCTAssertEqual(layer.outputShape, FeatureShape(channels: 32, height: 56, width: 56))
    }

    func testOverridesChangeOnlyWhatTheyTouch() throws {
        // bc-100-12 with 100 classes: classifier 342 → 100 instead of 342 → 10: +90·(342 + 1).
        XCTAssertEqual(try architecture("densenet-bc-100-12", classes: 100).trainableParameters, 769_162 + 90 * 343)
        // d2l ResNet-18 on RGB: only the 7x7 stem conv grows, by 2 input channels · 49 · 64.
        XCTAssertEqual(try architecture("resnet18", input: "3x224x224").trainableParameters, 11_178_378 + 2 * 49 * 64)
        // The spatial size changes no parameter count.
        XCTAssertEqual(try architecture("densenet121", input: "3x64x64").trainableParameters, 7_978_856)
    }

    func testDenseMLPDefaultsByHand() throws {
        // 10 features, k = 32, one block of 4: Linear(10 + 32i → 32) for i = 0...3, output 138 → 1.
        let a = try architecture("dense-mlp")
        let layers = (0..<4).map { i in (10 + 32 * i) * 32 + 32 }
        XCTAssertEqual(a.trainableParameters, layers.reduce(0, +) + 138 + 1)
        XCTAssertEqual(a.trainableParameters, 7_691)
        XCTAssertEqual(a.outputShape, FeatureShape(features: 1))
        XCTAssertEqual(a.denseBlocks.first?.outputChannels, 138)
        // With batch norm: γ, β and running mean, var for each layer's 32 outputs.
        var withBN = DenseMLPConfiguration()
        withBN.batchNorm = true
        let b = try Architecture(.denseMLP(withBN))
        XCTAssertEqual(b.trainableParameters, 7_691 + 4 * 64)
        XCTAssertEqual(b.nonTrainableParameters, 4 * 64)
        // Two blocks: the transition compresses 138 → 69, block 2 ends at 69 + 2·32.
        var twoBlocks = DenseMLPConfiguration(inputFeatures: 13)
        twoBlocks.blockConfig = [4, 2]
        let c = try Architecture(.denseMLP(twoBlocks))
        XCTAssertEqual(c.transitions.map(\.outputChannels), [70])          // ⌊141 / 2⌋
        XCTAssertEqual(c.denseBlocks.map(\.outputChannels), [13 + 128, 70 + 64])
    }

    /// The seed exercise: DenseNet-83 (DenseNet-161's k = 48 and 96 stem channels, blocks
    /// halved to 3-6-18-12) against DenseNet-121. Literals from an independent Python count.
    func testDenseNet83HasMoreParametersThanDenseNet121() throws {
        let d83 = try architecture("densenet83")
        XCTAssertEqual(d83.trainableParameters, 9_421_108)
        XCTAssertEqual(try architecture("densenet83", classes: 10).trainableParameters, 8_321_218)
        XCTAssertEqual(try architecture("densenet121", classes: 10).trainableParameters, 6_964_106)
        XCTAssertEqual(d83.denseBlocks.map(\.outputChannels), [96 + 3 * 48, 120 + 6 * 48, 204 + 18 * 48, 534 + 12 * 48])
        XCTAssertEqual(d83.finalChannels, 1110)
        XCTAssertEqual(d83.denseBlocks.map(\.bottleneckWidth), [192, 192, 192, 192])
    }
}

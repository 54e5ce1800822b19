import XCTest
@testable import DenseNetModels

/// Derived widths, shapes, names and FLOPs.
final class ArchitectureTests: XCTestCase {
    private func architecture(_ name: String, classes: Int? = nil, input: String? = nil) throws -> Architecture {
        try Architecture(ModelZoo.configuration(named: name, classes: classes, input: input))
    }

    func testDenseNet121Widths() throws {
        let a = try architecture("densenet121")
        XCTAssertEqual(a.denseBlocks.map(\.inputChannels), [64, 128, 256, 512])
        XCTAssertEqual(a.denseBlocks.map(\.outputChannels), [256, 512, 1024, 1024])
        XCTAssertEqual(a.denseBlocks.map(\.height), [56, 28, 14, 7])
        XCTAssertEqual(a.denseBlocks.map(\.bottleneckWidth), [128, 128, 128, 128])
        XCTAssertEqual(a.denseBlocks[0].layerInputWidths, [64, 96, 128, 160, 192, 224])
        XCTAssertEqual(a.denseBlocks[3].layerInputChannels(15), 512 + 15 * 32)
        XCTAssertEqual(a.transitions.map(\.inputChannels), [256, 512, 1024])
        XCTAssertEqual(a.transitions.map(\.outputChannels), [128, 256, 512])
        XCTAssertEqual(a.transitions.map(\.outputHeight), [28, 14, 7])
        XCTAssertEqual(a.finalChannels, 1024)
        XCTAssertEqual(a.outputShape, FeatureShape(features: 1000))
        XCTAssertEqual(a.layer(named: "features.conv0")?.outputShape, FeatureShape(channels: 64, height: 112, width: 112))
        XCTAssertEqual(a.layer(named: "features.pool0")?.outputShape, FeatureShape(channels: 64, height: 56, width: 56))
        XCTAssertEqual(a.layer(named: "features.denseblock1")?.outputShape, FeatureShape(channels: 256, height: 56, width: 56))
        XCTAssertEqual(a.layer(named: "features.norm5")?.inputShape, FeatureShape(channels: 1024, height: 7, width: 7))
        XCTAssertEqual(a.minimumInputHeight, 29)   // torchvision's docstring: minimum input 29x29
    }

    func testDenseNetBC100Widths() throws {
        let a = try architecture("densenet-bc-100-12")
        XCTAssertEqual(a.denseBlocks.map(\.layerCount), [16, 16, 16])
        XCTAssertEqual(a.denseBlocks[0].inputChannels, 24)
        XCTAssertEqual(a.denseBlocks[0].outputChannels, 24 + 16 * 12)   // 216
        XCTAssertEqual(a.denseBlocks[0].outputChannels, 216)
        XCTAssertEqual(a.transitions.map(\.outputChannels), [108, 150])
        XCTAssertEqual(a.denseBlocks.map(\.outputChannels), [216, 300, 342])
        XCTAssertEqual(a.denseBlocks.map(\.height), [32, 16, 8])
        XCTAssertEqual(a.denseBlocks.map(\.bottleneckWidth), [48, 48, 48])
        // The CIFAR stem is one conv: no norm0, relu0 or pool0.
        XCTAssertNil(a.layer(named: "features.norm0"))
        XCTAssertNil(a.layer(named: "features.pool0"))
        XCTAssertNotNil(a.layer(named: "features.norm5"), "torchvision names the final norm norm5 for any block count")
        XCTAssertEqual(a.minimumInputHeight, 4)   // two 2/2 pools: 4 → 2 → 1
    }

    func testD2LAndResNetShapes() throws {
        let d = try architecture("d2l")
        XCTAssertEqual(d.denseBlocks.map(\.inputChannels), [64, 96, 112, 120])
        XCTAssertEqual(d.denseBlocks.map(\.outputChannels), [192, 224, 240, 248])
        XCTAssertEqual(d.denseBlocks.map(\.height), [24, 12, 6, 3])
        XCTAssertEqual(d.denseBlocks.map(\.bottleneckWidth), [nil, nil, nil, nil])
        XCTAssertNil(d.layer(named: "features.denseblock1.denselayer1.conv2"))
        let conv = try XCTUnwrap(d.layer(named: "features.denseblock1.denselayer1.conv1"))
        XCTAssertEqual(conv.kind, .convolution(ConvolutionSpec(inChannels: 64, outChannels: 32, kernel: 3, padding: 1, bias: true)))

        let r = try architecture("resnet18")
        XCTAssertEqual(r.residualBlocks.map(\.outputChannels), [64, 64, 128, 128, 256, 256, 512, 512])
        XCTAssertEqual(r.residualBlocks.map(\.hasProjection), [false, false, true, false, true, false, true, false])
        XCTAssertEqual(r.residualBlocks.map(\.outputHeight), [24, 24, 12, 12, 6, 6, 3, 3])
        let projection = try XCTUnwrap(r.layer(named: "layer2.0.downsample.0"))
        XCTAssertEqual(projection.inputShape, FeatureShape(channels: 64, height: 24, width: 24))
        XCTAssertEqual(projection.outputShape, FeatureShape(channels: 128, height: 12, width: 12))
        XCTAssertEqual(projection.trainableParameters, 64 * 128 + 128)
        XCTAssertNil(r.layer(named: "layer2.0.downsample.1"))   // d2l: no BN on the projection
        XCTAssertEqual(r.layer(named: "fc")?.kind, .linear(LinearSpec(inFeatures: 512, outFeatures: 10)))
    }

    func testTorchvisionNames() throws {
        let a = try architecture("densenet121")
        let withParameters = a.leaves.filter { $0.trainableParameters > 0 }.map(\.name)
        for name in ["features.conv0", "features.norm0", "features.denseblock1.denselayer1.norm1",
                     "features.denseblock1.denselayer1.conv1", "features.denseblock1.denselayer1.norm2",
                     "features.denseblock1.denselayer1.conv2", "features.denseblock4.denselayer16.conv2",
                     "features.transition1.norm", "features.transition3.conv", "features.norm5", "classifier"] {
            XCTAssertTrue(withParameters.contains(name), name)
        }
        // 1 stem conv + 2 per layer (58) + 3 transitions + classifier = 121 weight layers, and
        // as many BNs: torchvision's state dict has 242 modules with weights.
        XCTAssertEqual(withParameters.count, 242)
        XCTAssertEqual(Set(a.layers.map(\.name)).count, a.layers.count, "names are unique")
        XCTAssertEqual(a.layer(named: "features.transition2.pool")?.kind, .avgPool(PoolingSpec(kernel: 2, stride: 2)))
    }

    /// A configuration small enough to count by hand: CIFAR stem 3 → 4 on 8x8, k = 2, bn_size 2,
    /// blocks [2, 1], θ = 0.5, 3 classes.
    func testHandCheckedParametersAndFLOPs() throws {
        let c = DenseNetConfiguration(name: "tiny", growthRate: 2, blockConfig: [2, 1], initialFeatures: 4,
                                      bottleneckFactor: 2, compression: 0.5, classCount: 3,
                                      inputShape: FeatureShape(channels: 3, height: 8, width: 8), stem: .cifar)
        let a = try Architecture(c)
        // MACs per layer = out · H' · W' · in · k².
        let macs = 4 * 64 * 3 * 9          // conv0 3→4 3x3 on 8x8
            + 4 * 64 * 4 + 2 * 64 * 4 * 9  // block1 layer1: 1x1 4→4, 3x3 4→2
            + 4 * 64 * 6 + 2 * 64 * 4 * 9  // block1 layer2: 1x1 6→4, 3x3 4→2
            + 4 * 16 * 8                   // transition1: 1x1 8→4 after the 8x8 → 4x4 average pool
            + 4 * 16 * 4 + 2 * 16 * 4 * 9  // block2 layer1 on 4x4
            + 6 * 3                        // classifier 6 → 3
        XCTAssertEqual(a.forwardFLOPs, 2 * macs)
        XCTAssertEqual(a.forwardFLOPs, 41_252)
        let params = 3 * 4 * 9
            + (2 * 4 + 4 * 4 + 2 * 4 + 4 * 2 * 9)
            + (2 * 6 + 6 * 4 + 2 * 4 + 4 * 2 * 9)
            + (2 * 8 + 8 * 4)
            + (2 * 4 + 4 * 4 + 2 * 4 + 4 * 2 * 9)
            + 2 * 6 + (6 * 3 + 3)
        XCTAssertEqual(a.trainableParameters, params)
        XCTAssertEqual(a.trainableParameters, 513)
        XCTAssertEqual(a.nonTrainableParameters, 2 * (4 + 4 + 6 + 4 + 8 + 4 + 4 + 6))
        XCTAssertEqual(a.layer(named: "features.transition1.conv")?.forwardFLOPs, 2 * 4 * 16 * 8)
        // The description lists what the module runs: pooling first with average pooling.
        let names = a.leaves.map(\.name)
        XCTAssertLessThan(try XCTUnwrap(names.firstIndex(of: "features.transition1.pool")),
                          try XCTUnwrap(names.firstIndex(of: "features.transition1.conv")))
    }

    func testDenseNet121FLOPsMatchPublishedFigure() throws {
        // torchvision lists densenet121 at 2.83 "GFLOPS" (multiply-accumulates) for 224x224,
        // counted with its transitions' 1x1 convolutions before the pooling: the order our
        // max-pooling transitions keep.
        guard case .denseNet(var c) = try ModelZoo.configuration(named: "densenet121") else { return XCTFail() }
        c.transitionPooling = .max
        let torchvisionOrder = try Architecture(c).forwardFLOPs
        XCTAssertGreaterThan(torchvisionOrder / 2, 2_800_000_000)
        XCTAssertLessThan(torchvisionOrder / 2, 2_900_000_000)
        // Average pooling first saves 3/4 of each transition's product: 2·c·c/2·(H² − (H/2)²)
        // for (c, H) = (256, 56), (512, 28), (1024, 14), 154,140,672 FLOPs each.
        XCTAssertEqual(torchvisionOrder - (try architecture("densenet121").forwardFLOPs), 3 * 154_140_672)
    }

    func testAblationsChangeOpsNotCounts() throws {
        var c = DenseNetConfiguration.d2l
        c.transitionPooling = .max
        c.dropRate = 0.2
        let a = try Architecture(c)
        XCTAssertEqual(a.trainableParameters, 758_226)
        XCTAssertEqual(a.layer(named: "features.transition1.pool")?.kind, .maxPool(PoolingSpec(kernel: 2, stride: 2)))
        XCTAssertEqual(a.layer(named: "features.denseblock2.denselayer3.dropout")?.kind, .dropout(rate: 0.2))
        XCTAssertNil(try Architecture(.d2l).layer(named: "features.denseblock2.denselayer3.dropout"))
    }

    func testEveryNamedModelBuilds() throws {
        for name in ModelZoo.names {
            let a = try architecture(name)
            XCTAssertEqual(a.name, name)
            XCTAssertGreaterThan(a.trainableParameters, 0, name)
        }
    }

    func testSummaryTable() throws {
        let a = try architecture("densenet121")
        let table = a.summaryTable(batchSize: 8)
        XCTAssertTrue(table.contains("Total params: 8,062,504"), table)
        XCTAssertTrue(table.contains("Trainable params: 7,978,856"))
        XCTAssertTrue(table.contains("Non-trainable params: 83,648"))
        let conv0 = try XCTUnwrap(table.split(separator: "\n").first { $0.hasPrefix("features.conv0 ") })
        XCTAssertTrue(conv0.contains("(Conv2d)"))
        XCTAssertTrue(conv0.contains("[8, 64, 112, 112]"))
        XCTAssertTrue(conv0.hasSuffix("9,408"))   // 64 · 3 · 7 · 7
        let rows = table.split(separator: "\n").filter { $0.contains(" (") && $0.contains("[8,") }
        XCTAssertEqual(rows.count, a.leaves.count)
        let nested = a.summaryTable(batchSize: 1, includeComposites: true)
        XCTAssertTrue(nested.contains("  features.denseblock1.denselayer1 (_DenseLayer)"))
        XCTAssertEqual(Architecture.grouped(1_234_567), "1,234,567")
        XCTAssertEqual(Architecture.grouped(999), "999")
        XCTAssertEqual(Architecture.scaled(5_004_999_999), "5.00 G")
        XCTAssertEqual(Architecture.scaled(5_005_000_000), "5.01 G")
        XCTAssertEqual(Architecture.scaled(15_124), "15.12 K")
        XCTAssertEqual(Architecture.scaled(999), "999")
        XCTAssertTrue(table.contains("Forward FLOPs: 5.21 G per example, 41.65 G per batch"), table)
    }
}

import Checkpoints
import Datasets
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, class 2: sizes from files and options overflow-checked in one place
/// (`Sources/Runtime/CheckedArithmetic.swift`), each overflow an error naming the field.
/// Big-endian UInt32 words, as an IDX header.
func bigEndian(_ words: [Int]) -> [UInt8] {
    words.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: UInt32(truncatingIfNeeded: v) >> (24 - 8 * $0)) } }
}

final class HostileArithmeticTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("hostile-arithmetic") }
    override func tearDown() { dir.remove() }

    func testCheckedSizeRefusesOverflowNegativesAndUnrepresentableDoubles() throws {
        refuses("1x4611686018427387904x2", mentioning: ["input", "4611686018427387904", "overflows"]) {
            try CheckedSize.product([1, 4_611_686_018_427_387_904, 2], what: "input")
        }
        refuses("3x3037000500x3037000500", mentioning: ["--input", "overflows"]) {
            try CheckedSize.product([3, 3_037_000_500, 3_037_000_500], what: "--input")
        }
        refuses("negative dimension", mentioning: ["shape", "-3", "negative"]) {
            try CheckedSize.product([2, -3], what: "shape")
        }
        refuses("sum past Int.max", mentioning: ["layers", "overflows"]) { try CheckedSize.sum([Int.max, 1], what: "layers") }
        refuses("bytes of 2^62 floats", mentioning: ["tensor bytes"]) {
            try CheckedSize.bytes(elements: 1 << 62, what: "tensor bytes")
        }
        for value in [1e30, -1, .nan, .infinity, 9_223_372_036_854_775_808.0] {
            refuses("--max-memory \(value)", mentioning: ["--max-memory", "not a whole number"]) {
                try CheckedSize.integer(value, what: "--max-memory")
            }
        }
        refuses("beyond physical memory", mentioning: ["--batch", "physical memory"]) {
            try CheckedSize.fitsInMemory(Int.max, what: "--batch")
        }
        // What must still work: exact results next to the limits.
        XCTAssertEqual(try CheckedSize.product([3_037_000_499, 3_037_000_499], what: "x"), 3_037_000_499 * 3_037_000_499)
        XCTAssertEqual(try CheckedSize.integer(9_223_372_036_854_774_784.0, what: "x"), 9_223_372_036_854_774_784)
        XCTAssertEqual(CheckedSize.ceilingDivision(65, by: Int.max), 1)
        XCTAssertEqual(CheckedSize.ceilingDivision(Int.max, by: 1), Int.max)
        XCTAssertEqual(CheckedSize.ceilingDivision(Int.max, by: 2), Int.max / 2 + 1)
        XCTAssertEqual(CheckedSize.ceilingDivision(0, by: 64), 0)
    }

    /// `--batch 9223372036854775807`: one batch of everything, no trap in the loader.
    func testBatchSizeIntMaxMakesOneBatch() {
        let loader = DataLoader(hostileDataset(5), options: .init(batchSize: Int.max, shuffle: true, prefetch: false))
        XCTAssertEqual(loader.batchesPerEpoch, 1)
        XCTAssertEqual(try loader.next()?.labels.count, 5)
        XCTAssertNil(try loader.next())
        XCTAssertEqual(try loader.next()?.labels.count, 5)
    }

    /// A training state's loader fields: Int.max, negative, off a batch boundary.
    func testLoaderStateFromAFileIsCheckedWithoutTrapping() {
        let loader = DataLoader(hostileDataset(65), options: .init(batchSize: 64, prefetch: false))
        func state(epoch: Int = 0, position: Int, batch: Int = 64) -> DataLoaderState {
            DataLoaderState(seed: 0, epoch: epoch, position: position, exampleCount: 65, batchSize: batch)
        }
        refuses("position Int.max", mentioning: ["position", "\(Int.max)"]) { try loader.restore(state(position: .max)) }
        refuses("position -1", mentioning: ["position", "-1"]) { try loader.restore(state(position: -1)) }
        refuses("epoch -2", mentioning: ["epoch", "-2"]) { try loader.restore(state(epoch: -2, position: 0)) }
        refuses("position off a batch boundary", mentioning: ["position 30", "batch boundary"]) {
            try loader.restore(state(position: 30))
        }
        let huge = DataLoader(hostileDataset(65), options: .init(batchSize: Int.max, prefetch: false))
        refuses("batch Int.max, position 3", mentioning: ["position 3"]) {
            try huge.restore(state(position: 3, batch: .max))
        }
        XCTAssertNoThrow(try huge.restore(state(position: 65, batch: .max)))
        XCTAssertNoThrow(try loader.restore(state(position: 64)))
        XCTAssertEqual(try loader.next()?.labels.count, 1)
    }

    /// A checkpoint's `model_configuration` with absurd sizes is refused from its numbers alone,
    /// before a module is built (in well under a second, without allocating).
    func testAbsurdModelConfigurationInCheckpointMetadataIsRefusedBeforeBuilding() throws {
        let base = tinyDenseNet()
        func checkpoint(_ description: ModelConfiguration, _ name: String) throws -> String {
            let path = dir.file("\(name).safetensors")
            try Safetensors.write([TensorSource](), metadata: ["model_configuration": description.json], to: path)
            return path
        }
        var cases: [(String, ModelConfiguration, [String])] = []
        var f = base
        f.inputShape = FeatureShape(parsing: "1x4611686018427387904x2")!
        cases.append(("input 1x4611686018427387904x2", .denseNet(f), ["model_configuration.input", "overflows"]))
        f = base
        f.inputShape = FeatureShape(parsing: "3x3037000500x3037000500")!
        cases.append(("input 3x3037000500x3037000500", .denseNet(f), ["model_configuration.input"]))
        f = base
        f.inputShape = FeatureShape(parsing: "1x100000x100000")!
        cases.append(("input 1x100000x100000", .denseNet(f), ["model_configuration.input", "physical memory"]))
        f = base
        f.blockConfig = [1_000_000_000]
        cases.append(("10^9 layers", .denseNet(f), ["model_configuration", "parameter"]))
        f = base
        f.blockConfig = [1_000_000, 1_000_000, 1_000_000]
        cases.append(("3 x 10^6 layers", .denseNet(f), ["model_configuration", "physical memory"]))
        f = base
        f.classCount = 1_000_000_000_000
        cases.append(("10^12 classes", .denseNet(f), ["model_configuration", "physical memory"]))
        f = base
        f.classCount = Int.max
        cases.append(("Int.max classes", .denseNet(f), ["model_configuration", "overflows"]))
        f = base
        f.growthRate = Int.max
        cases.append(("growth Int.max", .denseNet(f), ["model_configuration", "overflows"]))
        let resnet = ModelConfiguration.resNet((ResNetConfiguration(stageChannels: [64, 1 << 40], blocksPerStage: [2, 2])))
        cases.append(("resnet 2^40 channels", resnet, ["model_configuration", "resnet18"]))
        let mlp = ModelConfiguration.denseMLP((DenseMLPConfiguration(inputFeatures: 1 << 50)))
        cases.append(("mlp 2^50 features", mlp, ["model_configuration"]))
        let plain = ModelConfiguration.denseMLP((DenseMLPConfiguration(name: "mlp", inputFeatures: 10, growthRate: 1 << 20,
                                                                     blockConfig: [1 << 20], denseConnections: false)))
        cases.append(("plain mlp 2^20 x 2^20 x 2^20", plain, ["model_configuration"]))

        for (label, description, words) in cases {
            let path = try checkpoint(description, label.replacingOccurrences(of: " ", with: "-"))
            let started = Date()
            let live = Memory.active
            refuses(label, mentioning: words) { try TrainingCheckpoint.modelConfiguration(inFile: path) }
            XCTAssertLessThan(Date().timeIntervalSince(started), 1, label)
            XCTAssertEqual(Memory.active, live, "\(label): nothing allocated")
        }
        // The real models still pass, and the bound is below their true parameter counts.
        for name in ["densenet121", "densenet-bc-100-12", "d2l", "resnet18", "dense-mlp", "mlp"] {
            let model = try ModelZoo.configuration(named: name)
            XCTAssertNoThrow(try ModelBounds.check(model, field: name), name)
            let bound = try ModelBounds.parameterLowerBound(model, what: name)
            let exact = try ModelFactory.build(model, policy: .shared).parameterCount
            XCTAssertLessThanOrEqual(bound, exact, name)
            XCTAssertGreaterThan(bound, exact / 20, "\(name): the bound is not vacuous")
        }
    }

    func testDatasetSizesFromFilesAreChecked() {
        // IDX dimensions whose product overflows, or is absurd.
        for dims in [[0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], [0xFFFF_FFFF, 0xFFFF_FFFF, 1], [1 << 31, 64, 2]] {
            let bytes = bigEndian([Int(IDX.imagesMagic)] + dims) + [0, 0, 0]
            refuses("IDX dims \(dims)", mentioning: ["bad dimensions", "absurd"]) { try IDX.parseImages(bytes, path: "x.idx") }
        }
        refuses("image size overflow", mentioning: ["image size", "overflows"]) {
            try ImageDataset(pixels: [], labels: [], channels: 1 << 40, height: 1 << 40, width: 2, classCount: 1)
        }
    }

    /// `--epochs 4000000000000000000` in a training state: the schedule neither traps nor
    /// returns a rate that is not finite.
    func testScheduleWithAbsurdEpochsStaysFinite() {
        for kind in LearningRateSchedule.Kind.allCases {
            let s = LearningRateSchedule(kind: kind, baseRate: 0.1, epochs: 4_000_000_000_000_000_000, stepsPerEpoch: 1000,
                                         warmupEpochs: 1e18)
            XCTAssertEqual(s.totalSteps, Int.max)
            for step in [0, 1, 1 << 40, Int.max] { XCTAssertTrue(s.rate(atStep: step).isFinite, "\(kind) \(step)") }
        }
    }
}

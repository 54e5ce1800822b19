import Autograd
import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

/// model.safetensors holds torchvision's state_dict (names, shapes, values as they are);
/// training-state.safetensors the optimizer; loading is strict.
final class CheckpointMappingTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUp() { dir = TemporaryDirectory("checkpoint-mapping") }
    override func tearDown() { dir.remove() }

    /// A model after two SGD steps, so weights, running statistics and momentum are not initial.
    func trainedModel(_ c: DenseNetConfiguration, seed: UInt64 = 3) throws -> (DenseNet, SGD) {
        Initialization.seed = seed
        let model = try DenseNet(c, policy: .shared)
        let sgd = SGD(parameters: model.parameters, learningRate: 0.05, momentum: 0.9)
        let shape = c.inputShape
        let trainer = Trainer(model: model, optimizer: sgd,
                              schedule: LearningRateSchedule(kind: .constant, baseRate: 0.05, epochs: 1, stepsPerEpoch: 2))
        for step in 0..<2 {
            let x = Tensor.randomNormal([shape.channels, 6, shape.height, shape.width], seed: 100 + UInt64(step))
            _ = trainer.step(images: x, labels: (0..<6).map { Int32($0 % c.classCount) })
        }
        return (model, sgd)
    }

    func testModelFileHasTorchvisionNamesAndShapes() throws {
        let (model, _) = try trainedModel(tinyDenseNet())
        let path = dir.file("model.safetensors")
        try TrainingCheckpoint.saveModel(model, to: path)
        let header = try Safetensors.readHeader(path)
        let shapes = header.shapes
        // Names and shapes written by hand from torchvision's DenseNet (growth 4, bn_size 2, 8 stem channels).
        XCTAssertEqual(shapes["features.conv0.weight"], [8, 1, 3, 3])
        XCTAssertEqual(shapes["features.denseblock1.denselayer1.norm1.weight"], [8])
        XCTAssertEqual(shapes["features.denseblock1.denselayer1.norm1.running_mean"], [8])
        XCTAssertEqual(shapes["features.denseblock1.denselayer1.conv1.weight"], [8, 8, 1, 1])
        XCTAssertEqual(shapes["features.denseblock1.denselayer2.conv2.weight"], [4, 8, 3, 3])
        XCTAssertEqual(shapes["features.transition1.conv.weight"], [8, 16, 1, 1])
        XCTAssertEqual(shapes["features.denseblock2.denselayer2.norm1.running_var"], [12])
        XCTAssertEqual(shapes["features.norm5.weight"], [16])   // torchvision: norm5 whatever the block count
        XCTAssertEqual(shapes["classifier.weight"], [10, 16])
        XCTAssertEqual(shapes["classifier.bias"], [10])
        XCTAssertEqual(Set(shapes.keys), Set(model.stateDict().map(\.name)), "weights only, nothing else")
        XCTAssertFalse(shapes.keys.contains { $0.hasPrefix("optimizer.") || $0.hasSuffix("num_batches_tracked") })
        // Values as they are (PyTorch's row-major layout for these shapes).
        let contents = try Safetensors.read(path)
        for (name, tensor) in model.stateDict() {
            XCTAssertEqual(contents.tensors[name]?.array, tensor.array, name)
        }
        XCTAssertEqual(header.metadata["format"], "pt")
        XCTAssertEqual(try TrainingCheckpoint.modelConfiguration(inFile: path), .denseNet(tinyDenseNet()))
    }

    func testRoundTripRestoresIdenticalLogits() throws {
        let c = tinyDenseNet()
        let (model, _) = try trainedModel(c)
        let path = dir.file("model.safetensors")
        try TrainingCheckpoint.saveModel(model, to: path)
        Initialization.seed = 999   // different initial weights
        let restored = try DenseNet(c, policy: .naive)
        try TrainingCheckpoint.loadModel(restored, from: path)
        let x = Tensor.randomNormal([1, 5, 28, 28], seed: 42)
        for mode in ["eval", "train"] {
            for m in [model, restored] { if mode == "eval" { m.eval() } else { m.train() } }
            XCTAssertEqual(Trainer.logits(restored, images: x).array, Trainer.logits(model, images: x).array, mode)
        }
    }

    func testMismatchedCheckpointIsRefusedNamingTheTensor() throws {
        let (model, _) = try trainedModel(tinyDenseNet())
        let path = dir.file("model.safetensors")
        try TrainingCheckpoint.saveModel(model, to: path)
        var other = tinyDenseNet()
        other.classCount = 7
        let wrong = try DenseNet(other)
        let before = wrong.classifier.weight.value.array
        guard let error = assertThrows(CheckpointError.self, { try TrainingCheckpoint.loadModel(wrong, from: path) }) else { return }
        XCTAssertTrue(error.description.contains("classifier.weight: file has [10, 16], expected [7, 16]"), error.description)
        XCTAssertEqual(wrong.classifier.weight.value.array, before, "nothing is loaded from a refused file")
        var deeper = tinyDenseNet()
        deeper.blockConfig = [2, 3]
        guard let missing = assertThrows(CheckpointError.self, { try TrainingCheckpoint.loadModel(try DenseNet(deeper), from: path) })
        else { return }
        XCTAssertTrue(missing.description.contains("missing tensors: features.denseblock2.denselayer3.conv1.weight"), missing.description)
    }

    func testOptimizerStateIsNamedByParameterAndRestored() throws {
        let c = tinyDenseNet()
        let (model, sgd) = try trainedModel(c)
        let names = model.namedParameters().map(\.name)
        let tensors = TrainingCheckpoint.optimizerTensors(sgd, parameterNames: names)
        XCTAssertEqual(tensors.count, names.count)
        XCTAssertEqual(tensors.first?.name, "optimizer.features.conv0.weight.momentum_buffer")
        XCTAssertEqual(tensors.last?.name, "optimizer.classifier.bias.momentum_buffer")

        let adam = Adam(parameters: model.parameters)
        let adamNames = TrainingCheckpoint.optimizerTensors(adam, parameterNames: names).map(\.name)
        XCTAssertTrue(adamNames.contains("optimizer.classifier.weight.exp_avg"))
        XCTAssertTrue(adamNames.contains("optimizer.classifier.weight.exp_avg_sq"))

        let path = dir.file("state.safetensors")
        try Safetensors.write(tensors.map { TensorSource(name: $0.name, tensor: $0.tensor) }, to: path)
        let fresh = SGD(parameters: model.parameters, learningRate: 0.05, momentum: 0.9)
        try TrainingCheckpoint.loadOptimizer(fresh, parameterNames: names, from: path, stepCount: 2)
        XCTAssertEqual(fresh.stepCount, 2)
        XCTAssertEqual(fresh.namedState().map { $0.tensor.array }, sgd.namedState().map { $0.tensor.array })
    }

    func testConfigurationJSONRoundTripsEveryZooModel() throws {
        for name in ModelZoo.names + ["densenet-bc-40-12"] {
            let configuration = try ModelZoo.configuration(named: name, classes: 7)
            XCTAssertEqual(try ModelConfiguration(json: configuration.json), configuration, name)
        }
        // The schema checkpoints have stored since they first stored a model (written out by hand).
        let d2l = try ModelZoo.configuration(named: "d2l")
        XCTAssertEqual(d2l.json, #"{"denseNet":{"_0":{"blockConfig":[4,4,4,4],"classCount":10,"compression":0.5,"#
                       + #""convBias":true,"dropRate":0,"growthRate":32,"initialFeatures":64,"input":"1x96x96","#
                       + #""name":"d2l","stem":"imagenet","transitionPooling":"average"}}}"#)
        // A configuration that cannot be built is refused with the reason, naming the field.
        let bad = d2l.json.replacingOccurrences(of: #""growthRate":32"#, with: #""growthRate":0"#)
        XCTAssertThrowsError(try ModelConfiguration(json: bad)) { XCTAssertTrue("\($0)".contains("growth"), "\($0)") }
        let path = dir.file("bad.safetensors")
        try Safetensors.write([TensorSource](), metadata: ["model_configuration": bad], to: path)
        XCTAssertThrowsError(try TrainingCheckpoint.modelConfiguration(inFile: path)) { error in
            XCTAssertTrue("\(error)".contains("model_configuration"), "\(error)")
        }
    }

    func testLayoutSwapsBatchAndChannels() {
        // (N=2, C=3, 1, 2) with value 100n + 10c + w → (C, N, 1, 2).
        var values = [Float]()
        for n in 0..<2 { for c in 0..<3 { for w in 0..<2 { values.append(Float(100 * n + 10 * c + w)) } } }
        let swapped = Layout.swapLeadingDimensions(Tensor(shape: [2, 3, 1, 2], values: values))
        XCTAssertEqual(swapped.shape, [3, 2, 1, 2])
        XCTAssertEqual(swapped.array, [0, 1, 100, 101, 10, 11, 110, 111, 20, 21, 120, 121])
        XCTAssertEqual(Layout.swapLeadingDimensions(swapped).array, values)
    }
}

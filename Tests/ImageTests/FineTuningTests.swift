import Autograd
import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

/// Starting from a torchvision-named state_dict with another class count, and training the
/// classifier alone.
final class FineTuningTests: XCTestCase {
    var dir: TemporaryFolder!
    override func setUp() { dir = TemporaryFolder("fine-tuning") }
    override func tearDown() { dir.remove() }

    /// A model after two SGD steps (weights and running statistics not initial), saved.
    func savedModel(_ c: DenseNetConfiguration, seed: UInt64 = 1) throws -> (DenseNet, String) {
        Initialization.seed = seed
        let model = try DenseNet(c, policy: .shared)
        let trainer = Trainer(model: model, optimizer: SGD(parameters: model.parameters, learningRate: 0.05, momentum: 0.9),
                              schedule: LearningRateSchedule(kind: .constant, baseRate: 0.05, epochs: 1, stepsPerEpoch: 2))
        for step in 0..<2 {
            _ = trainer.step(images: Tensor.randomNormal([3, 4, 32, 32], seed: 10 + UInt64(step)),
                             labels: (0..<4).map { Int32($0 % c.classCount) })
        }
        let path = dir.file("source-\(c.classCount).safetensors")
        try TrainingCheckpoint.saveModel(model, to: path)
        return (model, path)
    }

    func stateArrays(_ model: Module, prefix: String) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: model.stateDict().filter { $0.name.hasPrefix(prefix) }.map { ($0.name, $0.tensor.array) })
    }

    func testDenseNet121With1000ClassesLoadsWithAFiveClassClassifier() throws {
        let source = try XCTUnwrap({ () -> DenseNetConfiguration? in
            if case .denseNet(let c) = try ModelZoo.configuration(named: "densenet121") { return c }
            return nil
        }())
        XCTAssertEqual(source.classCount, 1000)
        Initialization.seed = 1
        let big = try DenseNet(source, policy: .shared)
        let path = dir.file("densenet121.safetensors")
        try TrainingCheckpoint.saveModel(big, to: path)
        var five = source
        five.classCount = 5
        Initialization.seed = 2
        let model = try DenseNet(five, policy: .shared)
        let freshClassifier = stateArrays(model, prefix: "classifier.")
        let report = try FineTuning.initialize(model, from: path)
        XCTAssertEqual(report.replacedClassifier?.file, 1000)
        XCTAssertEqual(report.replacedClassifier?.model, 5)
        XCTAssertEqual(report.loaded, model.stateDict().count - 2)
        XCTAssertTrue(report.description.contains("classifier replaced: the file's has 1000 classes, the model 5"), report.description)
        XCTAssertEqual(stateArrays(model, prefix: "classifier."), freshClassifier)
        let loaded = stateArrays(model, prefix: "features."), original = stateArrays(big, prefix: "features.")
        XCTAssertEqual(loaded.count, original.count)
        for (name, values) in original { XCTAssertEqual(loaded[name], values, name) }
    }

    func testFrozenFeaturesStayBitIdenticalAndTheClassifierTrains() throws {
        let (_, path) = try savedModel(smallDenseNet(classes: 1000))
        Initialization.seed = 5
        let model = try DenseNet(smallDenseNet(classes: 5), policy: .shared)
        let report = try FineTuning.initialize(model, from: path)
        XCTAssertEqual(report.replacedClassifier?.model, 5)
        let trainable = FineTuning.trainableParameters(model, freeze: .features)
        XCTAssertEqual(trainable.count, 2, "classifier weight and bias")
        let trainer = Trainer(model: model, optimizer: SGD(parameters: trainable, learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4),
                              schedule: LearningRateSchedule(kind: .constant, baseRate: 0.05, epochs: 1, stepsPerEpoch: 40))
        trainer.frozenModules = FineTuning.frozenModules(model, freeze: .features)
        let features = stateArrays(model, prefix: "features."), classifier = stateArrays(model, prefix: "classifier.")
        // Images (C, N, H, W) whose brightness says their class, so that the frozen features separate them.
        let labels: [Int32] = [0, 1, 2, 3, 4, 0, 1, 2]
        let x = Tensor.randomNormal([3, 8, 32, 32], seed: 77)
        for c in 0..<3 { for j in 0..<8 { for p in 0..<1024 { x.pointer[(c * 8 + j) * 1024 + p] = 0.2 * x.pointer[(c * 8 + j) * 1024 + p] + Float(labels[j]) - 2 } } }
        var losses = [Float]()
        for _ in 0..<40 { losses.append(trainer.step(images: x, labels: labels).loss) }
        XCTAssertEqual(stateArrays(model, prefix: "features."), features, "weights and running statistics unchanged")
        XCTAssertNotEqual(stateArrays(model, prefix: "classifier.weight"), classifier.filter { $0.key == "classifier.weight" })
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "the classifier fits the batch: \(losses)")

        // Without freezing, the same step changes the features (so the check above can fail).
        let unfrozen = try DenseNet(smallDenseNet(classes: 5), policy: .shared)
        _ = try FineTuning.initialize(unfrozen, from: path)
        let before = stateArrays(unfrozen, prefix: "features.")
        let plain = Trainer(model: unfrozen, optimizer: SGD(parameters: FineTuning.trainableParameters(unfrozen, freeze: .none), learningRate: 0.1),
                            schedule: LearningRateSchedule(kind: .constant, baseRate: 0.1, epochs: 1, stepsPerEpoch: 1))
        _ = plain.step(images: x, labels: labels)
        XCTAssertNotEqual(stateArrays(unfrozen, prefix: "features."), before)
    }

    /// `featuresWithoutGradient` (set by TrainingRun for --freeze features) trains the classifier
    /// as the full graph does, keeps no activations for the features, and leaves their gradients
    /// untouched.
    func testFrozenFeaturesWithoutAGraphTrainTheSameClassifierInLessMemory() throws {
        let (_, path) = try savedModel(smallDenseNet(classes: 1000))
        let x = Tensor.randomNormal([3, 8, 32, 32], seed: 78)
        let labels: [Int32] = [0, 1, 2, 3, 4, 0, 1, 2]
        var results = [(classifier: [String: [Float]], peak: Int, featureGradients: Float)]()
        for withoutGraph in [false, true] {
            Initialization.seed = 9
            let model = try DenseNet(smallDenseNet(classes: 5), policy: .naive)
            _ = try FineTuning.initialize(model, from: path)
            model.featuresWithoutGradient = withoutGraph
            let trainer = Trainer(model: model, optimizer: SGD(parameters: FineTuning.trainableParameters(model, freeze: .features),
                                                               learningRate: 0.1, momentum: 0.9),
                                  schedule: LearningRateSchedule(kind: .constant, baseRate: 0.1, epochs: 1, stepsPerEpoch: 3))
            trainer.frozenModules = FineTuning.frozenModules(model, freeze: .features)
            let before = Memory.active(.activations)
            Memory.resetPeak()
            for _ in 0..<3 { _ = trainer.step(images: x, labels: labels) }
            let gradients = model.namedParameters().filter { $0.name.hasPrefix("features.") }
                .reduce(Float(0)) { $0 + $1.parameter.grad.array.map(abs).reduce(0, +) }
            results.append((stateArrays(model, prefix: "classifier."), Memory.peak(.activations) - before, gradients))
        }
        let (graph, noGraph) = (results[0], results[1])
        for (name, values) in graph.classifier {
            let other = try XCTUnwrap(noGraph.classifier[name])
            for (a, b) in zip(values, other) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a)), name) }
        }
        XCTAssertNotEqual(graph.classifier["classifier.weight"], stateArrays(try DenseNet(smallDenseNet(classes: 5)), prefix: "classifier.weight")["classifier.weight"])
        XCTAssertLessThan(noGraph.peak, graph.peak / 2, "no activations kept for the features: peaks of \(noGraph.peak) vs \(graph.peak) activation bytes")
        XCTAssertEqual(noGraph.featureGradients, 0)
    }

    func testCheckpointOfAFrozenRunNamesTheClassifiersOptimizerState() throws {
        let model = try DenseNet(smallDenseNet(classes: 5), policy: .shared)
        let sgd = SGD(parameters: FineTuning.trainableParameters(model, freeze: .features), learningRate: 0.1, momentum: 0.9)
        XCTAssertEqual(TrainingCheckpoint.parameterNames(of: sgd, in: model), ["classifier.weight", "classifier.bias"])
        let all = SGD(parameters: model.parameters, learningRate: 0.1, momentum: 0.9)
        XCTAssertEqual(TrainingCheckpoint.parameterNames(of: all, in: model), model.namedParameters().map(\.name))
        XCTAssertEqual(TrainingCheckpoint.optimizerTensors(sgd, parameterNames: TrainingCheckpoint.parameterNames(of: sgd, in: model))
                        .map(\.name).sorted(),
                       ["optimizer.classifier.bias.momentum_buffer", "optimizer.classifier.weight.momentum_buffer"])
    }

    func testAnotherArchitectureIsRefusedNamingTheTensors() throws {
        let (_, path) = try savedModel(smallDenseNet(classes: 10, growth: 6))
        let model = try DenseNet(smallDenseNet(classes: 10, growth: 4), policy: .shared)
        let before = stateArrays(model, prefix: "")
        XCTAssertThrowsError(try FineTuning.initialize(model, from: path)) { error in
            guard case CheckpointError.stateMismatch(_, let missing, let unexpected, let mismatched)? = error as? CheckpointError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(missing.isEmpty && unexpected.isEmpty)
            XCTAssertTrue(mismatched.contains { $0.name == "features.denseblock1.denselayer1.conv2.weight" && $0.found == [6, 12, 3, 3] },
                          "\(mismatched)")
        }
        XCTAssertEqual(stateArrays(model, prefix: ""), before, "nothing copied from a refused file")
    }
}

/// A small torchvision-shaped DenseNet (ImageNet stem, bottleneck, compression ½, no conv bias),
/// RGB 32x32: the model of the fine-tuning tests and of the torchvision fixture
/// (Scripts/make_torchvision_fixture.py writes its layout).
func smallDenseNet(classes: Int, growth: Int = 4) -> DenseNetConfiguration {
    DenseNetConfiguration(name: "small", growthRate: growth, blockConfig: [2, 2], initialFeatures: 8, bottleneckFactor: 2,
                          compression: 0.5, classCount: classes, inputShape: FeatureShape(channels: 3, height: 32, width: 32))
}

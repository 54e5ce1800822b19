import Datasets
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

final class EvaluationTests: XCTestCase {
    func testArgmaxAndConfusionMatrixByHand() {
        // Logits (classes 3, N 4), column n = sample n; sample 3 ties classes 0 and 2 → 0.
        let logits = Tensor(shape: [3, 4], values: [0.1, 2, -1, 5,
                                                   0.9, 1, -2, 1,
                                                   0.2, 3, -3, 5])
        let predictions = Predictions.argmax(logits)
        XCTAssertEqual(predictions, [1, 2, 0, 0])
        var m = ConfusionMatrix(classCount: 3)
        for (label, p) in zip([1, 1, 0, 2], predictions) { m.add(label: label, prediction: p) }
        XCTAssertEqual(m.counts, [[1, 0, 0], [0, 1, 1], [1, 0, 0]])
        XCTAssertEqual(m.total, 4)
        XCTAssertEqual(m.correct, 2)
        XCTAssertEqual(m.accuracy, 0.5)
        XCTAssertEqual(m.recall, [1, 0.5, 0])
        let table = m.table(classNames: ["cat", "dog", "bird"])
        XCTAssertTrue(table.contains("1 dog"), table)
        XCTAssertTrue(table.contains("50.0%"), table)
        XCTAssertEqual(table.split(separator: "\n").count, 4)
    }

    /// A network whose classifier ignores its input (weights 0) with biases [0, 0, ln 2]:
    /// softmax [¼, ¼, ½] for every image, so every prediction is class 2, the loss is ln 2 for
    /// label 2 and ln 4 otherwise.
    func testEvaluateOnAHandMadeDataset() throws {
        let c = DenseNetConfiguration(name: "probe", growthRate: 2, blockConfig: [1], initialFeatures: 4,
                                      bottleneckFactor: nil, classCount: 3,
                                      inputShape: FeatureShape(channels: 1, height: 4, width: 4), stem: .cifar)
        let model = try DenseNet(c)
        model.classifier.weight.value.zero()
        let bias = model.classifier.bias!.value
        bias.assign(Tensor(shape: [3], values: [0, 0, Float(log(2.0))]))
        let labels: [Int32] = [0, 1, 2, 2, 0, 2]
        let pixels = (0..<(6 * 16)).map { UInt8($0 * 7 % 256) }
        let dataset = try ImageDataset(pixels: pixels, labels: labels, channels: 1, height: 4, width: 4, classCount: 3)
        let loader = DataLoader(dataset, options: DataLoaderOptions(batchSize: 4, shuffle: false))
        let result = try Trainer.evaluate(model, loader: loader, classCount: 3)
        XCTAssertEqual(result.examples, 6)
        XCTAssertEqual(result.confusion.counts, [[0, 0, 2], [0, 0, 1], [0, 0, 3]])
        XCTAssertEqual(result.accuracy, 0.5)
        XCTAssertEqual(result.loss, (3 * log(2.0) + 3 * log(4.0)) / 6, accuracy: 1e-6)
        XCTAssertFalse(model.isTraining, "evaluation mode")
    }
}

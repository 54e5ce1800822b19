import DenseNetModels
import Foundation
import NeuralLayers
import Training
import XCTest

/// `--init-from` against a state_dict the Swift code did not write: the `safetensors` Python
/// package wrote it in torchvision's DenseNet names with 1000 classes and int64
/// `num_batches_tracked` scalars, as `safetensors.torch.save_file(model.state_dict(), ...)` does
/// (Scripts/make_torchvision_fixture.py; the probes of its values are numpy's).
final class TorchvisionFixtureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func testAStateDictWrittenByPythonInitialisesAFiveClassModel() throws {
        let file = TorchvisionFixtureTests.fixtures.appendingPathComponent("torchvision-small-1000.safetensors").path
        let probes = try JSONDecoder().decode([String: [Float]].self, from: Data(contentsOf:
            TorchvisionFixtureTests.fixtures.appendingPathComponent("torchvision-small-1000.json")))
        let model = try DenseNet(smallDenseNet(classes: 5))
        let fresh = model.classifier.weight.value.array
        let report = try FineTuning.initialize(model, from: file)
        XCTAssertEqual(report.replacedClassifier?.file, 1000)
        XCTAssertEqual(report.replacedClassifier?.model, 5)
        XCTAssertTrue("\(report)".contains("classifier replaced: the file's has 1000 classes, the model 5"), "\(report)")
        // Every tensor but the classifier's two came from the file (num_batches_tracked skipped).
        XCTAssertEqual(report.loaded, model.stateDict().count - 2)
        let state = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.name, $0.tensor) })
        XCTAssertEqual(probes.count, 4)
        for (name, values) in probes {
            let tensor = try XCTUnwrap(state[name], name)
            XCTAssertEqual(Array(tensor.array.prefix(values.count)), values, name)
        }
        XCTAssertEqual(model.classifier.weight.value.array, fresh, "the 5-class classifier keeps its own weights")
    }
}

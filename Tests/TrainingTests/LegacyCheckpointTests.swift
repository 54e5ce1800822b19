import Autograd
import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// A checkpoint written by the code of 2026-11-30 (commit b6a2c12), before the model
/// configurations became the checkpoint's metadata:
/// `densenet train --model densenet-bc-16-4 --input 1x8x8 --data fashion-mnist --limit 32
/// --batch 16 --epochs 1 --threads 1`. Later versions must keep loading it.
final class LegacyCheckpointTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/checkpoint-2026-11").path

    func testLoadsAndComputesTheLogitsItComputedWhenWritten() throws {
        let path = LegacyCheckpointTests.folder + "/" + TrainingCheckpoint.modelFileName
        let configuration = try XCTUnwrap(try TrainingCheckpoint.modelConfiguration(inFile: path))
        let network = try ModelFactory.build(configuration)
        _ = try TrainingCheckpoint.loadModel(network, from: path)
        XCTAssertEqual(network.modelConfiguration.name, "densenet-bc-16-4")
        XCTAssertEqual(network.modelConfiguration.inputShape.description, "1x8x8")
        XCTAssertEqual(network.parameterCount, LegacyCheckpointTests.trainableParameters)
        network.eval()
        let x = Tensor.randomNormal([1, 2, 8, 8], seed: 7)
        let logits = Autograd.withoutGradient { network(Variable(x)) }.value.array
        XCTAssertEqual(logits.count, 20)
        for (got, want) in zip(logits, LegacyCheckpointTests.logits) {
            XCTAssertEqual(got, want, accuracy: 1e-5 * max(1, abs(want)))
        }
    }

    func testProgressReadsForResume() throws {
        let (model, state) = try TrainingCheckpoint.locate(LegacyCheckpointTests.folder)
        let progress = try TrainingCheckpoint.readProgress(model: model, state: state)
        XCTAssertEqual(progress.globalStep, 2)
        XCTAssertEqual(progress.loader.batchSize, 16)
        XCTAssertEqual(progress.loader.exampleCount, 32)
        // Written before fine-tuning existed: no --init-from, nothing frozen.
        XCTAssertNil(progress.configuration.initFrom)
        XCTAssertEqual(progress.configuration.frozenPart, .none)
    }

    static let trainableParameters = 5322
    /// Eval-mode logits (10 classes × 2 images) of that code on `Tensor.randomNormal([1, 2, 8, 8], seed: 7)`.
    static let logits: [Float] = [
        -0.018264905, -0.026918672, 0.019713879, 0.108894065, 0.01639102, 0.03160893, 0.05236039, 0.07878807,
        0.032427985, 0.017290331, 0.050250717, 0.017085997, -0.031020531, -0.016738893, -0.11721029, -0.16429718,
        -0.014885739, -0.047625326, 0.04820794, 0.059114087,
    ]
}

import XCTest
import Runtime
import Kernels

final class CrossEntropyTests: XCTestCase {
    let labels: [Int32] = [3, 0, 9, 9, 1, 4, 7]

    func testFastMatchesReference() {
        let logits = OpsCheck.uniform([10, 7], seed: 200, low: -4, high: 4)
        XCTAssertEqual(CrossEntropy.forward(logits, labels: labels), CrossEntropy.forwardReference(logits, labels: labels),
                       accuracy: 1e-6)
        let d = OpsCheck.uniform([10, 7], seed: 201), dr = d.copy()
        CrossEntropy.backward(logits, labels: labels, scale: 0.5, dLogits: d)
        CrossEntropy.backwardReference(logits, labels: labels, scale: 0.5, dLogits: dr)
        OpsCheck.assertClose(d, dr, 1e-6, "dLogits")
        XCTAssertEqual(CrossEntropy.predictions(logits), CrossEntropy.predictionsReference(logits))
    }

    func testHandComputedLossIsStableForHugeLogits() {
        // Column 0: [1000, 999, -1000], label 0 → log(1 + e⁻¹) = 0.313261687.
        // Column 1: [-1000, -1000, -1000], label 2 → log 3 = 1.098612289.
        let logits = Tensor(shape: [3, 2], values: [1000, -1000, 999, -1000, -1000, -1000])
        let loss = CrossEntropy.forward(logits, labels: [0, 2])
        XCTAssertEqual(loss, (0.313_261_687 + 1.098_612_289) / 2, accuracy: 1e-6)
        let d = Tensor.zeros([3, 2])
        CrossEntropy.backward(logits, labels: [0, 2], scale: 1, dLogits: d)
        XCTAssertTrue(d.array.allSatisfy(\.isFinite))
        // softmax(col 0) = [1/(1+e⁻¹), e⁻¹/(1+e⁻¹), 0]; gradient (softmax − onehot)/2.
        XCTAssertEqual(d[0, 0], (0.731_058_579 - 1) / 2, accuracy: 1e-6)
        XCTAssertEqual(d[1, 0], 0.268_941_421 / 2, accuracy: 1e-6)
        XCTAssertEqual(d[2, 1], (1.0 / 3 - 1) / 2, accuracy: 1e-6)
    }

    func testReferenceBackwardMatchesFiniteDifferences() {
        let logits = OpsCheck.uniform([4, 3], seed: 210, low: -2, high: 2)
        let labels: [Int32] = [1, 3, 0]
        let numeric = GradientCheck.numericalGradient(of: logits, epsilon: 1e-2) {
            Double(CrossEntropy.forwardReference(logits, labels: labels))
        }
        let d = Tensor.zeros([4, 3])
        CrossEntropy.backwardReference(logits, labels: labels, scale: 1, dLogits: d)
        OpsCheck.assertClose(d.array, numeric, 1e-3, "dLogits vs finite differences")
        let fast = Tensor.zeros([4, 3])
        CrossEntropy.backward(logits, labels: labels, scale: 1, dLogits: fast)
        CrossEntropy.backward(logits, labels: labels, scale: 1, dLogits: fast)
        OpsCheck.assertClose(fast.array, d.array.map { 2 * $0 }, 1e-6, "backward accumulates")
    }

    func testPredictionsTakeTheFirstOfEqualMaxima() {
        let logits = Tensor(shape: [3, 3], values: [1, 5, 2, 3, 5, 2, 3, 0, 2])
        XCTAssertEqual(CrossEntropy.predictions(logits), [1, 0, 0])
    }
}

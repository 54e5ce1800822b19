import Training
import XCTest

/// Schedules against values computed by hand (cos(π/4) = 0.70710678, cos(7π/8) = −0.92387953).
final class LearningRateScheduleTests: XCTestCase {
    func rates(_ s: LearningRateSchedule) -> [Float] { (0..<s.totalSteps).map { s.rate(atStep: $0) } }

    func assertRates(_ actual: [Float], _ expected: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, file: file, line: line)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            XCTAssertEqual(a, e, accuracy: 1e-7 + 1e-6 * abs(e), "step \(i)", file: file, line: line)
        }
    }

    func testConstant() {
        let s = LearningRateSchedule(kind: .constant, baseRate: 0.05, epochs: 2, stepsPerEpoch: 3)
        assertRates(rates(s), [0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    }

    func testStepDecayAtDefaultMilestones() {
        // 4 epochs: milestones ⌊4/2⌋ = 2 and ⌊3·4/4⌋ = 3.
        let s = LearningRateSchedule(kind: .step, baseRate: 1, epochs: 4, stepsPerEpoch: 2)
        XCTAssertEqual(s.milestones, [2, 3])
        assertRates(rates(s), [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
        XCTAssertEqual(LearningRateSchedule.defaultMilestones(epochs: 300), [150, 225])   // Huang et al.
        XCTAssertEqual(LearningRateSchedule.defaultMilestones(epochs: 1), [])
        XCTAssertEqual(LearningRateSchedule.defaultMilestones(epochs: 2), [1])
    }

    func testStepDecayWithGivenMilestonesAndGamma() {
        let s = LearningRateSchedule(kind: .step, baseRate: 0.8, epochs: 3, stepsPerEpoch: 1, milestones: [1], gamma: 0.5)
        assertRates(rates(s), [0.8, 0.4, 0.4])
    }

    func testCosine() {
        // 8 steps: 0.1 · ½(1 + cos(π·s/8)).
        let s = LearningRateSchedule(kind: .cosine, baseRate: 0.1, epochs: 2, stepsPerEpoch: 4)
        assertRates(rates(s), [0.1, 0.0961939766, 0.0853553391, 0.0691341716, 0.05, 0.0308658284, 0.0146446609,
                               0.0038060234])
    }

    func testWarmupThenCosine() {
        // 1 warm-up epoch of 4 steps: 0.1·(s+1)/4; then cosine over the remaining 8 steps.
        let s = LearningRateSchedule(kind: .cosine, baseRate: 0.1, epochs: 3, stepsPerEpoch: 4, warmupEpochs: 1)
        let r = rates(s)
        assertRates(Array(r[0..<4]), [0.025, 0.05, 0.075, 0.1])
        assertRates([r[4], r[6], r[8], r[11]], [0.1, 0.0853553391, 0.05, 0.0038060234])
    }

    func testFractionalWarmupWithStepDecay() {
        // Half an epoch of 4 steps = 2 warm-up steps, then the step schedule (milestone at epoch 1).
        let s = LearningRateSchedule(kind: .step, baseRate: 0.2, epochs: 2, stepsPerEpoch: 4, warmupEpochs: 0.5)
        assertRates(rates(s), [0.1, 0.2, 0.2, 0.2, 0.02, 0.02, 0.02, 0.02])
    }
}

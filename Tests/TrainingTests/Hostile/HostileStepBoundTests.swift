import DenseNetModels
import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, class 3: `ModelBounds.stepLowerBound`, which refuses absurd steps before the
/// planner builds anything, must stay below what a step really needs, or it would refuse
/// models that fit. Checked against the planner's dry run of the real step (an independent
/// count: the runtime's own ledger) for each strategy and optimizer.
final class HostileStepBoundTests: XCTestCase {
    func testTheStepLowerBoundIsBelowThePlannedPeakOfRealSteps() throws {
        let models: [(ModelConfiguration, Int)] = [
            (try ModelZoo.configuration(named: "densenet-bc-40-12"), 8),
            (try ModelZoo.configuration(named: "d2l", input: "1x64x64"), 4),
            (try ModelZoo.configuration(named: "densenet121", input: "3x64x64"), 2),
            (try ModelZoo.configuration(named: "resnet18", input: "1x32x32"), 4),
            (try ModelZoo.configuration(named: "dense-mlp"), 16),
        ]
        for (model, batch) in models {
            for (optimizer, states) in [(PlannedOptimizer.sgd, 0), (.sgdMomentum, 1), (.adam, 2)] {
                let bound = try ModelBounds.stepLowerBound(model, batch: batch, optimizerStates: states, what: model.name)
                for policy in MemoryPolicy.standard {
                    let plan = try MemoryPlanner.plan(model, batch: batch, policy: policy, threads: 1, optimizer: optimizer)
                    XCTAssertLessThanOrEqual(bound.totalBytes, plan.peakBytes, "\(model.name) \(policy.name) \(optimizer)")
                    XCTAssertLessThanOrEqual(bound.modelBytes, plan.parameterBytes + plan.gradientBytes + plan.optimizerStateBytes,
                                             "\(model.name) \(optimizer)")
                    XCTAssertEqual(bound.inputBytes, plan.inputBytes, "\(model.name): the batch is counted exactly")
                }
                // Not vacuous: within a factor of 8 of the lightest strategy's peak.
                let lightest = try MemoryPolicy.standard.map {
                    try MemoryPlanner.plan(model, batch: batch, policy: $0, threads: 1, optimizer: optimizer).peakBytes
                }.min()!
                XCTAssertGreaterThan(bound.totalBytes * 8, lightest, "\(model.name) \(optimizer)")
            }
        }
    }

    func testStepBoundRefusalsNameTheNumbers() {
        let d2l = try! ModelZoo.configuration(named: "d2l")
        refuses("batch Int.max", mentioning: ["--batch 9223372036854775807", "overflows"]) {
            try ModelBounds.checkStep(d2l, batch: .max, optimizerStates: 1, what: "--batch 9223372036854775807")
        }
        refuses("batch 10^7 of d2l", mentioning: ["--batch 10000000", "one training step needs at least", "physical memory"]) {
            try ModelBounds.checkStep(d2l, batch: 10_000_000, optimizerStates: 1, what: "--batch 10000000")
        }
        XCTAssertNoThrow(try ModelBounds.checkStep(d2l, batch: 256, optimizerStates: 2, what: "--batch 256"))
    }
}

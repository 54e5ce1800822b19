import Autograd
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// A reducer for one rank: the sum over one rank is the values themselves; it counts its calls
/// and the values it was given, so a test can see how many all-reduces a step makes.
private final class OneRankReducer: BatchNormStatisticsReducer {
    var calls = 0
    func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) { calls += 1 }
}

/// conv → BN+ReLU (→ dropout), twice, → global pool → linear; each conv+BN a checkpointed
/// segment when `checkpointed`.
private final class TwoStageNet: Module {
    let conv1 = ConvLayer(2, 4, kernel: 3, padding: 1)
    let norm1 = BatchNormLayer(4)
    let conv2 = ConvLayer(4, 3, kernel: 3, padding: 1)
    let norm2 = BatchNormLayer(3)
    let fc = LinearLayer(3, 3)
    var checkpointed = false

    override init() {
        super.init()
        register("conv1", conv1); register("norm1", norm1); register("conv2", conv2); register("norm2", norm2)
        register("fc", fc)
    }

    func loss(_ x: Tensor, _ labels: [Int32]) -> Variable {
        let stages: [(Variable) -> Variable] = [
            { [self] v in Functional.dropout(norm1(conv1(v), relu: true), p: 0.25, training: isTraining) },
            { [self] v in norm2(conv2(v), relu: true) },
        ]
        var h = Variable(x)
        for (i, stage) in stages.enumerated() { h = checkpointed ? Autograd.checkpoint("stage\(i)", h, stage) : stage(h) }
        return Functional.crossEntropy(fc(Functional.globalAvgPool(h)), labels: labels)
    }
}

/// Synchronised batch norm (Sources/Autograd/BatchNormalization+Synchronized.swift) on one rank,
/// where it must compute what plain batch norm computes, with two reductions per batch norm in
/// forward and one in backward, none in a checkpoint's recompute; and the leaf hook of
/// data-parallel training (`Autograd.leafGradientCompleted`).
final class SynchronizedBatchNormTests: XCTestCase {
    override func tearDown() {
        BatchNormState.statisticsReducer = nil
        Autograd.leafGradientCompleted = nil
    }

    private let labels: [Int32] = [0, 2, 1, 1, 0]
    /// (C, N, H, W) with mean 3 and standard deviation 2.
    private func input() -> Tensor {
        Tensor(shape: [2, 5, 4, 4], values: Tensor.randomNormal([2, 5, 4, 4], std: 2, seed: 5).array.map { $0 + 3 })
    }

    private func step(checkpointed: Bool, reducer: OneRankReducer?)
        -> (loss: Float, grads: [[Float]], running: [[Float]], tracked: [Int]) {
        Initialization.seed = 3
        Autograd.dropoutSeed = 99
        let net = TwoStageNet()
        net.checkpointed = checkpointed
        BatchNormState.statisticsReducer = reducer
        defer { BatchNormState.statisticsReducer = nil }
        let loss = net.loss(input(), labels)
        loss.backward()
        return (loss.value.pointer[0], net.parameters.map(\.grad.array),
                net.namedBuffers().map(\.tensor.array), [net.norm1.batchesTracked, net.norm2.batchesTracked])
    }

    func testOneRankComputesWhatPlainBatchNormComputes() {
        let plain = step(checkpointed: false, reducer: nil)
        for checkpointed in [false, true] {
            let reducer = OneRankReducer()
            let synced = step(checkpointed: checkpointed, reducer: reducer)
            XCTAssertEqual(synced.loss, plain.loss, accuracy: 1e-6 * abs(plain.loss))
            for (a, b) in zip(synced.grads + synced.running, plain.grads + plain.running) {
                let scale = max(b.map(abs).max() ?? 0, 1e-6)
                for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * scale, "checkpointed \(checkpointed)") }
            }
            XCTAssertEqual(synced.tracked, [1, 1], "one running-statistics update per forward (checkpointed \(checkpointed))")
            // Two batch norms: 2 reductions each in forward, 1 each in backward; the recompute
            // reuses the forward's statistics (no reduction).
            XCTAssertEqual(reducer.calls, 2 * 2 + 2 * 1, "checkpointed \(checkpointed)")
        }
        // The first batch norm's input needs no gradient: no backward reduction for it.
    }

    func testTheRecomputeReusesTheSavedStatisticsNotNewOnes() {
        // A reducer that adds a different offset at each call: a recompute that reduced again
        // would normalise with other statistics than the forward and change the gradients.
        final class DriftingReducer: BatchNormStatisticsReducer {
            var calls = 0
            func sumOverRanks(_ values: UnsafeMutableBufferPointer<Double>) {
                calls += 1
                if values.count % 2 == 0 { for i in values.indices { values[i] *= 1 + 0.01 * Double(calls) } }
            }
        }
        func gradients(checkpointed: Bool) -> ([[Float]], Int) {
            Initialization.seed = 3
            Autograd.dropoutSeed = 99
            let net = TwoStageNet()
            net.checkpointed = checkpointed
            let reducer = DriftingReducer()
            BatchNormState.statisticsReducer = reducer
            defer { BatchNormState.statisticsReducer = nil }
            net.loss(input(), labels).backward()
            return (net.parameters.map(\.grad.array), reducer.calls)
        }
        let (plain, plainCalls) = gradients(checkpointed: false)
        let (recomputed, recomputedCalls) = gradients(checkpointed: true)
        XCTAssertEqual(plainCalls, recomputedCalls)
        for (a, b) in zip(recomputed, plain) {
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(y), 1e-3)) }
        }
    }

    func testEveryParameterIsReportedOnceWithItsFinalGradient() {
        for checkpointed in [false, true] {
            Initialization.seed = 3
            let net = TwoStageNet()
            net.checkpointed = checkpointed
            var reported = [ObjectIdentifier: [Float]]()
            Autograd.leafGradientCompleted = { node in
                XCTAssertNil(reported[ObjectIdentifier(node)], "\(node.label) reported twice")
                reported[ObjectIdentifier(node)] = node.gradientForTesting?.array
            }
            net.loss(Tensor.randomNormal([2, 5, 4, 4], seed: 5), labels).backward()
            Autograd.leafGradientCompleted = nil
            for (name, p) in net.namedParameters() {
                XCTAssertEqual(reported[ObjectIdentifier(p.node)], p.grad.array, "\(name), checkpointed \(checkpointed)")
            }
        }
    }
}

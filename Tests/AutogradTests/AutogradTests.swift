import Autograd
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// A small conv net: conv → BN+ReLU → conv(stride 2) → BN+ReLU → three residual-free stages of
/// conv → BN+ReLU (→ dropout) → global pool → linear → CE. With `checkpointed`, each of the
/// four segments is recomputed in backward, so only segment boundaries are kept.
private final class TinyNet: Module {
    let conv1 = ConvLayer(3, 6, kernel: 3, padding: 1, bias: true)
    let norm1 = BatchNormLayer(6)
    let conv2 = ConvLayer(6, 5, kernel: 3, stride: 2, padding: 1)
    let norm2 = BatchNormLayer(5)
    let stages = (0..<3).map { _ in (ConvLayer(5, 5, kernel: 3, padding: 1), BatchNormLayer(5)) }
    let fc = LinearLayer(5, 4)
    var checkpointed = false
    var dropout: Float = 0

    override init() {
        super.init()
        register("conv1", conv1); register("norm1", norm1); register("conv2", conv2)
        register("norm2", norm2)
        for (i, (conv, norm)) in stages.enumerated() { register("stage\(i).conv", conv); register("stage\(i).norm", norm) }
        register("fc", fc)
    }

    func logits(_ x: Variable) -> Variable {
        var segments: [(Variable) -> Variable] = [{ [self] v in
            Functional.dropout(norm2(conv2(norm1(conv1(v), relu: true)), relu: true), p: dropout, training: isTraining)
        }]
        for (conv, norm) in stages {
            segments.append { [self] v in Functional.dropout(norm(conv(v), relu: true), p: dropout, training: isTraining) }
        }
        var h = x
        for (i, segment) in segments.enumerated() {
            h = checkpointed ? Autograd.checkpoint("segment\(i)", h, segment) : segment(h)
        }
        return fc(Functional.globalAvgPool(h))
    }

    func loss(_ x: Variable, _ labels: [Int32]) -> Variable { Functional.crossEntropy(logits(x), labels: labels) }
}

final class AutogradTests: XCTestCase {
    private let labels: [Int32] = [1, 3, 0]

    private func input() -> Tensor { Tensor.randomNormal([3, 3, 7, 7], seed: 11) } // (C, N, H, W)

    func testGradientsMatchFiniteDifferences() {
        Initialization.seed = 1
        let net = TinyNet()
        let x = input()
        let xVar = Variable(x, node: Node.leaf("x", gradient: Tensor.zeros(x.shape)))
        net.loss(xVar, labels).backward()
        let analytic = xVar.node!.gradientForTesting!.array
        let numeric = GradientCheck.numericalGradient(of: x, epsilon: 1e-2) {
            Double(Autograd.withoutGradient { net.loss(Variable(x), labels).value.pointer[0] })
        }
        XCTAssertLessThan(GradientCheck.relativeError(analytic, numeric), 2e-2)
        // A parameter deep in the net too.
        let w = net.conv1.weight
        let analyticW = w.grad.array
        let numericW = GradientCheck.numericalGradient(of: w.value, epsilon: 1e-2) {
            Double(Autograd.withoutGradient { net.loss(Variable(x), labels).value.pointer[0] })
        }
        XCTAssertLessThan(GradientCheck.relativeError(analyticW, numericW), 2e-2)
    }

    func testBackwardReleasesActivations() {
        Initialization.seed = 2
        let net = TinyNet()
        let x = input()
        let before = Memory.active(.activations)
        do {
            let loss = net.loss(Variable(x), labels)
            XCTAssertGreaterThan(Memory.active(.activations), before, "the graph keeps tensors for backward")
            loss.backward()
        }
        XCTAssertEqual(Memory.active(.activations), before, "activations and their gradients are all freed after backward")
    }

    func testNoGradientModeRecordsNothing() {
        let net = TinyNet()
        let y = Autograd.withoutGradient { net.loss(Variable(input()), labels) }
        XCTAssertNil(y.node)
    }

    /// The checkpointed segment: same loss, same gradients, fewer peak activation bytes, one
    /// running-statistics update, and the same dropout mask in the recompute.
    func testCheckpointMatchesPlainAndSavesMemory() {
        let x = Tensor.randomNormal([3, 4, 16, 16], seed: 5)
        let labels: [Int32] = [0, 1, 2, 3]
        func run(checkpointed: Bool) -> (loss: Float, grads: [[Float]], running: [Float], peak: Int, tracked: Int) {
            Initialization.seed = 9
            Autograd.dropoutSeed = 77
            let net = TinyNet()
            net.checkpointed = checkpointed
            net.dropout = 0.3
            let base = Memory.active(.activations)
            Memory.resetPeak()
            let loss = net.loss(Variable(x), labels)
            loss.backward()
            let peak = Memory.peak(.activations) - base
            return (loss.value.pointer[0], net.parameters.map { $0.grad.array },
                    net.namedBuffers().flatMap { $0.tensor.array }, peak, net.norm1.batchesTracked)
        }
        let plain = run(checkpointed: false), ckpt = run(checkpointed: true)
        XCTAssertEqual(plain.loss, ckpt.loss, accuracy: 1e-5)
        for (a, b) in zip(plain.grads, ckpt.grads) { XCTAssertLessThan(GradientCheck.relativeError(b, a), 1e-5) }
        XCTAssertEqual(plain.running, ckpt.running, "running statistics must be updated exactly once")
        XCTAssertEqual(ckpt.tracked, 1)
        XCTAssertLessThan(ckpt.peak, plain.peak, "checkpointing must lower peak activation bytes")
        // Running statistics after one update from (mean 0, var 1) with momentum 0.1 are not the defaults.
        XCTAssertNotEqual(plain.running[0], 0)
    }

    func testSGDWithMomentumNesterovAndWeightDecay() {
        let p = Parameter(Tensor(shape: [2], values: [1, -2], category: .parameters))
        let sgd = SGD(parameters: [p], learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        p.grad.assign(Tensor(shape: [2], values: [0.5, 0.25]))
        sgd.step()
        // g = 0.5 + 0.01·1 = 0.51; b = 0.51; p = 1 − 0.1·(0.51 + 0.9·0.51) = 0.9031
        // g = 0.25 − 0.02 = 0.23; b = 0.23; p = −2 − 0.1·(0.23 + 0.207) = −2.0437
        XCTAssertEqual(p.value.array[0], 0.9031, accuracy: 1e-6)
        XCTAssertEqual(p.value.array[1], -2.0437, accuracy: 1e-6)
        p.grad.assign(Tensor(shape: [2], values: [0.5, 0.25]))
        sgd.step()
        // g = 0.5 + 0.009031 = 0.509031; b = 0.9·0.51 + 0.509031 = 0.968031; p = 0.9031 − 0.1·(0.509031 + 0.8712279)
        XCTAssertEqual(p.value.array[0], 0.9031 - 0.1 * (0.509031 + 0.9 * 0.968031), accuracy: 1e-6)
    }

    func testPlainSGDAndAdamFirstSteps() {
        let p = Parameter(Tensor(shape: [1], values: [2], category: .parameters))
        let sgd = SGD(parameters: [p], learningRate: 0.5)
        p.grad.fill(3)
        sgd.step()
        XCTAssertEqual(p.value.array[0], 0.5, accuracy: 1e-7)

        let q = Parameter(Tensor(shape: [1], values: [1], category: .parameters))
        let adam = Adam(parameters: [q], learningRate: 0.1)
        q.grad.fill(-4)
        adam.step()
        // First Adam step moves by lr·sign(g) (bias-corrected m/√v = g/|g|, up to eps).
        XCTAssertEqual(q.value.array[0], 1.1, accuracy: 1e-6)
        q.grad.fill(2)
        adam.step()
        // m = 0.9·(−0.4) + 0.1·2 = −0.16 → m̂ = −0.16/0.19; v = 0.999·0.016 + 0.001·4 = 0.019984 → v̂ = v/0.001999
        let mHat = -0.16 / 0.19, vHat = 0.019984 / (1 - 0.999 * 0.999)
        XCTAssertEqual(Double(q.value.array[0]), 1.1 - 0.1 * mHat / (vHat.squareRoot() + 1e-8), accuracy: 1e-5)
    }
}

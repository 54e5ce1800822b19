import Autograd
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// A net in which every kind of gradient buffer occurs: written by a batch norm (norm2), a
/// concatenation, a 1x1, a thin 3x3 and a strided convolution (`Autograd.recordWriting`); zeroed
/// for ReLU, which adds (`record`); a tensor with two consumers (conv1's output: written by the
/// concatenation, then added to by norm1); and one that a concatenation takes twice (zeroed, then
/// added to twice).
private final class FreshGradientNet: Module {
    let conv1 = ConvLayer(3, 4, kernel: 3, padding: 1)
    let norm1 = BatchNormLayer(4)
    let conv2 = ConvLayer(8, 5, kernel: 1)
    let norm2 = BatchNormLayer(5)
    let conv3 = ConvLayer(5, 6, kernel: 3, padding: 1)
    let conv4 = ConvLayer(6, 4, kernel: 3, stride: 2, padding: 1)
    let fc = LinearLayer(8, 3)

    override init() {
        super.init()
        register("conv1", conv1); register("norm1", norm1); register("conv2", conv2)
        register("norm2", norm2)
        register("conv3", conv3); register("conv4", conv4); register("fc", fc)
    }

    func loss(_ x: Variable, _ labels: [Int32]) -> Variable {
        let a = conv1(x)
        let b = norm1(a, relu: true)
        let c = Functional.concat([b, a])
        let e = conv3(norm2(conv2(c), relu: true))
        let f = conv4(Functional.relu(e))
        let g = Functional.concat([f, f])
        return Functional.crossEntropy(fc(Functional.globalAvgPool(g)), labels: labels)
    }
}

final class FreshGradientTests: XCTestCase {
    override func setUp() { Autograd.poisonsFreshGradients = true }
    override func tearDown() { Autograd.poisonsFreshGradients = false }

    func testEveryFreshGradientIsWrittenWholeOrZeroed() {
        let saved = Conv2d.thinKernels
        defer { Conv2d.thinKernels = saved }
        let labels: [Int32] = [2, 0, 1]
        for use in [Conv2d.ThinKernelUse.always, .off] {
            Conv2d.thinKernels = use
            Initialization.seed = 3
            let net = FreshGradientNet()
            let x = Tensor.randomNormal([3, 3, 6, 6], seed: 12)   // (C, N, H, W)
            let xVar = Variable(x, node: Node.leaf("x", gradient: Tensor.zeros(x.shape)))
            net.loss(xVar, labels).backward()
            let analytic = xVar.node!.gradientForTesting!.array
            XCTAssertTrue(analytic.allSatisfy(\.isFinite), "thin kernels \(use): a fresh gradient was left unwritten (NaN)")
            let numeric = GradientCheck.numericalGradient(of: x, epsilon: 1e-2) {
                Double(Autograd.withoutGradient { net.loss(Variable(x), labels).value.pointer[0] })
            }
            XCTAssertLessThan(GradientCheck.relativeError(analytic, numeric), 2e-2, "thin kernels \(use): x")
            let w = net.conv3.weight
            XCTAssertTrue(w.grad.array.allSatisfy(\.isFinite), "thin kernels \(use): conv3.weight")
            let numericW = GradientCheck.numericalGradient(of: w.value, epsilon: 1e-2) {
                Double(Autograd.withoutGradient { net.loss(Variable(x), labels).value.pointer[0] })
            }
            XCTAssertLessThan(GradientCheck.relativeError(w.grad.array, numericW), 2e-2, "thin kernels \(use): conv3.weight")
        }
    }

    /// A concatenation of one tensor with itself: its gradient is the sum of both slices of the
    /// seed (here by hand), not the last slice alone as two writes would leave.
    func testATensorTakenTwiceGetsBothGradients() {
        let x = Tensor.randomUniform([2, 3, 4, 4], low: 0.1, high: 1, seed: 13)   // positive: the ReLU passes all
        let xVar = Variable(x, node: Node.leaf("x", gradient: Tensor.zeros(x.shape)))
        let v = Functional.relu(xVar)
        let y = Functional.concat([v, xVar, v])
        let seed = Tensor.randomUniform(y.shape, seed: 14)
        Autograd.backward(y, seed: seed)
        let s = seed.array, n = x.count
        let expected = (0..<n).map { s[$0] + s[2 * n + $0] + s[n + $0] }
        let got = xVar.node!.gradientForTesting!.array
        XCTAssertTrue(got.allSatisfy(\.isFinite))
        XCTAssertLessThan(GradientCheck.relativeError(got, expected), 1e-6)
    }

    /// `Functional.concatBatchNorm` gives what batch norm of the concatenation gives, bit for bit,
    /// with each piece's gradient written where it lies: a fresh one whole (the poisoned buffer
    /// must not leak NaN), a leaf's added to, a constant's skipped, and a piece taken twice (by
    /// the concatenating path then) summed.
    func testConcatenatedBatchNormIsBatchNormOfTheConcatenation() {
        let x1 = Tensor.randomNormal([3, 2, 4, 4], seed: 20), x2 = Tensor.randomNormal([2, 2, 4, 4], seed: 21)
        let constant = Tensor.randomNormal([4, 2, 4, 4], seed: 22)
        let gamma = Tensor.randomUniform([13], low: 0.5, high: 1.5, seed: 23), beta = Tensor.randomNormal([13], seed: 24)
        func run(concatenating: Bool, twice: Bool) -> (y: [Float], grads: [[Float]], running: [Float]) {
            let l1 = Variable(x1, node: Node.leaf("x1", gradient: Tensor.zeros(x1.shape)))
            let l2 = Variable(x2, node: Node.leaf("x2", gradient: Tensor.zeros(x2.shape)))
            let norm = BatchNormLayer(13)
            norm.weight.value.assign(gamma)
            norm.bias.value.assign(beta)
            let r1 = Functional.relu(l1), r2 = Functional.relu(l2)
            let pieces = twice ? [r1, l2, Variable(constant), r2, r2] : [r1, l2, Variable(constant), Functional.relu(r2), r2]
            let y = concatenating ? norm(concatenating: pieces, relu: true) : norm(Functional.concat(pieces), relu: true)
            Autograd.backward(y, seed: Tensor.randomUniform(y.shape, low: -1, high: 1, seed: 25))
            let grads = [l1.node!.gradientForTesting!.array, l2.node!.gradientForTesting!.array,
                         norm.weight.grad.array, norm.bias.grad.array]
            return (y.value.array, grads, norm.runningMean.array + norm.runningVar.array)
        }
        for twice in [false, true] {
            let fused = run(concatenating: true, twice: twice), plain = run(concatenating: false, twice: twice)
            XCTAssertEqual(fused.y, plain.y, "taken twice \(twice): y")
            XCTAssertEqual(fused.running, plain.running, "taken twice \(twice): running statistics")
            for (i, (a, b)) in zip(fused.grads, plain.grads).enumerated() {
                XCTAssertTrue(a.allSatisfy(\.isFinite), "taken twice \(twice): gradient \(i) has NaN")
                XCTAssertEqual(a, b, "taken twice \(twice): gradient \(i)")
            }
            XCTAssertTrue(fused.grads[0].contains { $0 != 0 } && fused.grads[1].contains { $0 != 0 })
        }
    }
}

import Autograd
import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

/// `Transition` pools before its 1x1 convolution when pooling is average (they commute); this
/// checks it against torchvision's order, conv then pool, built from the same layers.
final class TransitionTests: XCTestCase {
    private struct Pass {
        var output: [Float], inputGradient: [Float], gradients: [[Float]]
    }

    private func run(_ t: Transition, _ x: Tensor, weights: [Float], _ forward: (Variable) -> Variable) -> Pass {
        t.zeroGradients()
        let xVar = Variable(x, node: Node.leaf("x", gradient: Tensor.zeros(x.shape)))
        let y = forward(xVar)
        Autograd.backward(y, seed: Tensor(shape: y.shape, values: weights))
        return Pass(output: y.value.array, inputGradient: xVar.node!.gradientForTesting!.array,
                    gradients: t.parameters.map { $0.grad.array })
    }

    func testAveragePoolingBeforeTheConvolutionIsTorchvisionsTransition() {
        Initialization.seed = 7
        // Odd height: the 2x2/2 pooling drops the last row in both orders.
        let t = Transition(inputWidth: 6, outputWidth: 3, convBias: true, pooling: .average,
                           initialization: .kaimingNormal)
        let x = Tensor.randomNormal([6, 2, 5, 6], seed: 5)
        let weights = lossWeights(3 * 2 * 2 * 3, seed: 9)
        let ours = run(t, x, weights: weights) { t($0) }
        let torchvision = run(t, x, weights: weights) {
            Functional.avgPool2d(t.conv(t.norm($0, relu: true)), PoolParameters(kernel: 2, stride: 2))
        }
        XCTAssertEqual(ours.output.count, 3 * 2 * 2 * 3)
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(ours.output, torchvision.output), 1e-5)
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(ours.inputGradient, torchvision.inputGradient), 1e-5)
        XCTAssertEqual(ours.gradients.count, 4)   // norm weight, norm bias, conv weight, conv bias
        for (i, (a, b)) in zip(ours.gradients, torchvision.gradients).enumerated() {
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(a, b), 1e-5, "parameter \(i)")
        }
    }
}

import Autograd
import DenseNetModels
import Kernels
import NeuralLayers
import Runtime
import XCTest

// Shared by the ResNet and dense-MLP tests: what the Architecture says a model's tensors are,
// and one training step's results for comparing strategies.

extension Architecture {
    /// Every trainable tensor the description implies, with its PyTorch shape, in layer order:
    /// conv `(out, in, k, k)` [+ bias], BN weight and bias `(C)`, linear `(out, in)` [+ bias].
    var expectedParameterShapes: [(name: String, shape: [Int])] {
        leaves.flatMap { layer -> [(name: String, shape: [Int])] in
            switch layer.kind {
            case .convolution(let c):
                return [("\(layer.name).weight", [c.outChannels, c.inChannels, c.kernel, c.kernel])]
                    + (c.bias ? [("\(layer.name).bias", [c.outChannels])] : [])
            case .batchNorm(let channels):
                return [("\(layer.name).weight", [channels]), ("\(layer.name).bias", [channels])]
            case .linear(let l):
                return [("\(layer.name).weight", [l.outFeatures, l.inFeatures])]
                    + (l.bias ? [("\(layer.name).bias", [l.outFeatures])] : [])
            default:
                return []
            }
        }
    }

    /// The running statistics of every batch norm, `(C)` each.
    var expectedBufferShapes: [(name: String, shape: [Int])] {
        leaves.flatMap { layer -> [(name: String, shape: [Int])] in
            guard case .batchNorm(let channels) = layer.kind else { return [] }
            return [("\(layer.name).running_mean", [channels]), ("\(layer.name).running_var", [channels])]
        }
    }
}

/// Asserts that `module`'s parameters and buffers are exactly those of `architecture`, by name
/// and shape, in order.
func assertTensorsMatch(_ module: Module, _ architecture: Architecture, file: StaticString = #filePath, line: UInt = #line) {
    let parameters = module.namedParameters().map { "\($0.name) \($0.parameter.shape)" }
    let expected = architecture.expectedParameterShapes.map { "\($0.name) \($0.shape)" }
    XCTAssertEqual(parameters, expected, "parameters of \(architecture.name)", file: file, line: line)
    let buffers = module.namedBuffers().map { "\($0.name) \($0.tensor.shape)" }
    let expectedBuffers = architecture.expectedBufferShapes.map { "\($0.name) \($0.shape)" }
    XCTAssertEqual(buffers, expectedBuffers, "buffers of \(architecture.name)", file: file, line: line)
}

/// One forward and backward pass of a `Network` with a fixed weighting of its outputs as the
/// loss (Σ wᵢ·outputᵢ in Double), keeping what tests compare.
struct NetworkStep {
    var output: [Float]
    var loss: Double
    var inputGradient: [Float]
    var gradients: [[Float]]
    var buffers: [[Float]]

    /// Runs `network` on `x` (a leaf that collects its gradient) and back-propagates `weights`.
    init(_ network: any Network, _ x: Tensor, weights: [Float]) {
        let xVar = Variable(x, node: Node.leaf("x", gradient: Tensor.zeros(x.shape)))
        network.zeroGradients()
        let y = network(xVar)
        output = y.value.array
        loss = GradientCheck.weightedSum(y.value, weights)
        Autograd.backward(y, seed: Tensor(shape: y.shape, values: weights))
        inputGradient = xVar.node!.gradientForTesting!.array
        gradients = network.parameters.map { $0.grad.array }
        buffers = network.namedBuffers().map { $0.tensor.array }
    }

    /// Same outputs, loss, input and parameter gradients, running statistics (relative error ≤ 1e-4).
    func assertSame(as reference: NetworkStep, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(output, reference.output), 1e-4, "\(label): output", file: file, line: line)
        XCTAssertEqual(loss, reference.loss, accuracy: 1e-4 * max(1, abs(reference.loss)), "\(label): loss", file: file, line: line)
        XCTAssertLessThanOrEqual(GradientCheck.relativeError(inputGradient, reference.inputGradient), 1e-4,
                                 "\(label): input gradient", file: file, line: line)
        XCTAssertEqual(gradients.count, reference.gradients.count, file: file, line: line)
        for (i, (g, r)) in zip(gradients, reference.gradients).enumerated() {
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(g, r), 1e-4, "\(label): gradient \(i)", file: file, line: line)
        }
        for (i, (b, r)) in zip(buffers, reference.buffers).enumerated() {
            XCTAssertLessThanOrEqual(GradientCheck.relativeError(b, r), 1e-4, "\(label): buffer \(i)", file: file, line: line)
        }
    }
}

/// Fixed pseudo-random weights in [−1, 1) for a weighted-sum loss.
func lossWeights(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in 2 * generator.nextUniform() - 1 }
}

/// Finite-difference check of the gradient of `loss` with respect to `tensor` (all of it,
/// or a view of it) against `analytic`.
func assertGradient(_ analytic: [Float], of tensor: Tensor, _ label: String, tolerance: Float = 2e-3,
                    epsilon: Float = 1e-3, _ loss: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
    let numeric = GradientCheck.numericalGradient(of: tensor, epsilon: epsilon, loss)
    let worst = zip(analytic, numeric).enumerated().max { abs($0.element.0 - $0.element.1) < abs($1.element.0 - $1.element.1) }
    XCTAssertLessThan(GradientCheck.relativeError(analytic, numeric), tolerance,
                      "\(label): worst element \(worst.map { "\($0.offset): analytic \($0.element.0), numeric \($0.element.1)" } ?? "-")",
                      file: file, line: line)
}

import Foundation
import Runtime

/// An optimizer updates parameters from their accumulated gradients.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    var parameters: [Parameter] { get }
    func step()
    /// Named state tensors (for checkpoints), in a fixed order.
    func namedState() -> [(name: String, tensor: Tensor)]
    /// Steps taken (Adam's bias correction needs it; checkpoints save it).
    var stepCount: Int { get set }
}

extension Optimizer {
    public func zeroGradients() {
        let span = Profile.begin(.optimizer); defer { Profile.end(span) }
        let grads = parameters.map(\.grad)
        guard !DryRun.isActive, grads.allSatisfy(\.isContiguous) else { for g in grads { g.zero() }; return }
        let pointers = grads.map(\.pointer)
        Parallel.forSegments(grads.map(\.count)) { i, r in
            memset(pointers[i] + r.lowerBound, 0, r.count * MemoryLayout<Float>.stride)
        }
        withExtendedLifetime(grads) {}
    }
}

/// Stochastic gradient descent with momentum, Nesterov momentum and weight decay, with
/// PyTorch's `torch.optim.SGD` semantics (dampening 0):
/// g ← g + wd·p;  b ← μ·b + g (b ← g on the first step);  p ← p − lr·(Nesterov ? g + μ·b : b).
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public let parameters: [Parameter]
    public var stepCount = 0
    private let buffers: [Tensor]

    public init(parameters: [Parameter], learningRate: Float, momentum: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0) {
        precondition(!nesterov || momentum > 0, "SGD: Nesterov momentum needs momentum > 0")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        buffers = momentum > 0 ? parameters.map { Tensor.zeros($0.shape, category: .optimizerState) } : []
    }

    public func step() {
        let span = Profile.begin(.optimizer); defer { Profile.end(span) }
        let (lr, mu, wd, first) = (learningRate, momentum, weightDecay, stepCount == 0)
        if DryRun.isActive { stepCount += 1; return }
        // Elementwise, so the parameters' elements are split across threads as one array
        // (Parallel.forSegments): the same arithmetic per element as a serial loop.
        let values = parameters.map(\.value.pointer), grads = parameters.map(\.grad.pointer)
        let momenta = buffers.map(\.pointer), nesterov = nesterov
        Parallel.forSegments(parameters.map(\.count)) { i, r in
            let p = values[i], g = grads[i]
            if mu == 0 {
                for j in r { p[j] -= lr * (g[j] + wd * p[j]) }
                return
            }
            let b = momenta[i]
            for j in r {
                let grad = g[j] + wd * p[j]
                b[j] = first ? grad : mu * b[j] + grad
                p[j] -= lr * (nesterov ? grad + mu * b[j] : b[j])
            }
        }
        withExtendedLifetime((parameters, buffers)) {}
        stepCount += 1
    }

    public func namedState() -> [(name: String, tensor: Tensor)] {
        buffers.enumerated().map { ("momentum_buffer.\($0.offset)", $0.element) }
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's `torch.optim.Adam` semantics (L2 weight decay added
/// to the gradient, bias-corrected moments).
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public let parameters: [Parameter]
    public var stepCount = 0
    private let first: [Tensor], second: [Tensor]

    public init(parameters: [Parameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        first = parameters.map { Tensor.zeros($0.shape, category: .optimizerState) }
        second = parameters.map { Tensor.zeros($0.shape, category: .optimizerState) }
    }

    public func step() {
        let span = Profile.begin(.optimizer); defer { Profile.end(span) }
        stepCount += 1
        if DryRun.isActive { return }
        let t = Float(stepCount)
        let c1 = 1 - powf(beta1, t), c2 = 1 - powf(beta2, t)
        let stepSize = learningRate / c1
        let (beta1, beta2, eps, weightDecay) = (beta1, beta2, eps, weightDecay)
        let values = parameters.map(\.value.pointer), grads = parameters.map(\.grad.pointer)
        let firsts = first.map(\.pointer), seconds = second.map(\.pointer)
        Parallel.forSegments(parameters.map(\.count)) { i, r in
            let p = values[i], g = grads[i], m = firsts[i], v = seconds[i]
            for j in r {
                let grad = g[j] + weightDecay * p[j]
                m[j] = beta1 * m[j] + (1 - beta1) * grad
                v[j] = beta2 * v[j] + (1 - beta2) * grad * grad
                p[j] -= stepSize * m[j] / ((v[j] / c2).squareRoot() + eps)
            }
        }
        withExtendedLifetime((parameters, first, second)) {}
    }

    public func namedState() -> [(name: String, tensor: Tensor)] {
        first.enumerated().map { ("exp_avg.\($0.offset)", $0.element) }
            + second.enumerated().map { ("exp_avg_sq.\($0.offset)", $0.element) }
    }
}

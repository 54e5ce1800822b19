import Autograd
import Runtime

/// A trainable tensor with its gradient, both counted by `Memory` (categories `.parameters`
/// and `.gradients`), and the leaf node gradients flow into.
public final class Parameter {
    public let value: Tensor
    public let grad: Tensor
    public let node: Node

    public init(_ value: Tensor, label: String = "parameter") {
        precondition(value.storage.category == .parameters,
                     "Parameter: tensor \(value.shape) must be allocated in category .parameters, not \(value.storage.category)")
        self.value = value
        self.grad = Tensor.zeros(value.shape, category: .gradients)
        self.node = Node.leaf(label, gradient: grad)
    }

    /// The parameter as an input of a computation (recorded only when gradients are enabled).
    public var variable: Variable { Variable(value, node: node) }
    public var shape: [Int] { value.shape }
    public var count: Int { value.count }
}

/// A network part with named parameters, buffers and children, named as in PyTorch's
/// `state_dict` (`features.denseblock1.denselayer1.conv1.weight`), so checkpoints map one to one.
open class Module {
    public private(set) var isTraining = true
    public private(set) var children: [(name: String, module: Module)] = []
    public private(set) var ownParameters: [(name: String, parameter: Parameter)] = []
    /// Non-trainable state saved with the model (batch-norm running statistics).
    public private(set) var ownBuffers: [(name: String, tensor: Tensor)] = []
    /// The module this one is registered in, and its name there.
    public private(set) weak var parent: Module?
    public private(set) var name = ""

    public init() {}

    @discardableResult
    public func register<M: Module>(_ name: String, _ module: M) -> M {
        children.append((name, module))
        module.parent = self
        module.name = name
        return module
    }

    /// The dotted path from the root, as in `state_dict` names (`features.denseblock1.denselayer2.conv1`).
    public var path: String {
        var names = [String]()
        var module: Module? = self
        while let m = module, m.parent != nil { names.append(m.name); module = m.parent }
        return names.reversed().joined(separator: ".")
    }

    /// Names this module's forward pass as what runs now in an active dry run, so a memory plan
    /// can say where its peak falls (`DryRun.swift`). Costs nothing outside a dry run.
    public func enterForward() {
        DryRun.current?.enter((Autograd.isRecomputing ? "recompute " : "forward ") + path)
    }

    @discardableResult
    public func register(parameter name: String, _ parameter: Parameter) -> Parameter {
        ownParameters.append((name, parameter))
        return parameter
    }

    @discardableResult
    public func register(buffer name: String, _ tensor: Tensor) -> Tensor {
        ownBuffers.append((name, tensor))
        return tensor
    }

    /// Every parameter of this module and its descendants, with dotted names, in registration order.
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var out = ownParameters.map { (prefix + $0.name, $0.parameter) }
        for (name, child) in children { out += child.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    public var parameters: [Parameter] { namedParameters().map { $0.parameter } }

    public func namedBuffers(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var out = ownBuffers.map { (prefix + $0.name, $0.tensor) }
        for (name, child) in children { out += child.namedBuffers(prefix: prefix + name + ".") }
        return out
    }

    /// Parameters and buffers by name, as PyTorch's `state_dict()` (without num_batches_tracked).
    public func stateDict() -> [(name: String, tensor: Tensor)] {
        namedParameters().map { ($0.name, $0.parameter.value) } + namedBuffers()
    }

    /// Trainable element count.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
    /// Non-trainable element count (running statistics).
    public var bufferCount: Int { namedBuffers().reduce(0) { $0 + $1.tensor.count } }

    /// Training mode (batch statistics, dropout on) for this module and its descendants.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, child) in children { child.train(on) }
    }

    /// Evaluation mode (running statistics, dropout off).
    public func eval() { train(false) }

    /// Sets every parameter gradient to zero.
    public func zeroGradients() {
        for p in parameters { p.grad.zero() }
    }
}

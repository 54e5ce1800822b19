import Kernels
import Runtime

/// A node of the reverse-mode graph: the function that produced one tensor (PyTorch's
/// `grad_fn`). It holds only what its backward needs (captured by `backward`) and links to the
/// nodes of its inputs, never to their values, so tensors that backward does not need are
/// freed as soon as the forward pass drops them.
public final class Node {
    /// Creation order: a node is always created after its inputs' nodes, so descending ids
    /// are a valid order for the backward pass.
    let id: Int
    /// Shape of the tensor this node produced (the shape of its gradient).
    public let shape: [Int]
    /// Nodes of the inputs, nil where an input needs no gradient. Emptied by `deinit` (see there).
    private(set) var inputs: [Node?]
    /// Adds into the input gradients (`+=`, one per input, nil where not needed) the gradient of
    /// the inputs given the gradient of the output; writes (`=`) those whose flag in `fresh` is
    /// set (see `Autograd.recordWriting`).
    var backward: ((_ gradOutput: Tensor, _ gradInputs: [Tensor?], _ fresh: [Bool]) -> Void)?
    /// How many of the first inputs' gradients `backward` can write when fresh; `Autograd.run`
    /// zeroes the other fresh ones first (0 for a backward that only adds).
    let writableInputs: Int
    /// The gradient accumulated so far for this node's output.
    var gradient: Tensor?
    /// Whether `gradient` was allocated and nothing written to it yet: its contents are undefined
    /// until the first backward that reaches it writes it whole (or `Autograd.run` zeroes it).
    private(set) var gradientIsFresh = false
    /// A leaf (parameter or checkpoint input): its gradient buffer is owned elsewhere and kept.
    let isLeaf: Bool
    public let label: String
    /// In a dry run, what ran when the node was made ("forward features.conv0"), so the backward
    /// pass can name itself after it; nil otherwise.
    let origin: String?

    nonisolated(unsafe) private static var nextID = 0

    init(label: String, shape: [Int], inputs: [Node?], isLeaf: Bool = false, gradient: Tensor? = nil,
         writableInputs: Int = 0, backward: ((Tensor, [Tensor?], [Bool]) -> Void)?) {
        Node.nextID += 1
        self.id = Node.nextID
        self.label = label
        self.shape = shape
        self.inputs = inputs
        self.isLeaf = isLeaf
        self.gradient = gradient
        self.writableInputs = writableInputs
        self.backward = backward
        self.origin = DryRun.current?.ledger.phase
    }

    /// Releases the graph behind this node without recursion. Left to Swift, dropping the last
    /// reference to a chain of nodes deinitialises each input from inside its consumer's deinit,
    /// one stack frame per node: a DenseNet of 16,000 layers (`densenet summary --model
    /// densenet-bc-16000-12`, issue 11) overflowed the stack. Here the inputs move into a local
    /// worklist; an input referenced only from there gives up its own inputs the same way before
    /// it is dropped, so every node deinitialises with no inputs left, at constant depth. An
    /// input still referenced elsewhere is simply let go (its last owner releases it later).
    deinit {
        guard !inputs.isEmpty else { return }
        var pending = [Node]()
        Node.moveInputs(of: self, into: &pending)
        while var node = pending.popLast() {
            if isKnownUniquelyReferenced(&node) { Node.moveInputs(of: node, into: &pending) }
        }
    }

    private static func moveInputs(of node: Node, into pending: inout [Node]) {
        for case let input? in node.inputs { pending.append(input) }
        node.inputs = []
    }

    /// A leaf whose gradient accumulates into `gradient` (a parameter's `.grad`).
    public static func leaf(_ label: String, gradient: Tensor) -> Node {
        Node(label: label, shape: gradient.shape, inputs: [], isLeaf: true, gradient: gradient, backward: nil)
    }

    /// The buffer gradients of this node's output accumulate into. Allocated when first needed
    /// and left unwritten (`gradientIsFresh`): the first backward to reach it writes it, so the
    /// pass that zeroed every buffer before its first `+=` is saved where that backward can write
    /// (`Autograd.recordWriting`), and done just before it elsewhere (`zeroIfFresh`).
    func gradientBuffer() -> Tensor {
        if let g = gradient { return g }
        let g = Tensor(shape: shape, category: .activations)
        if Autograd.poisonsFreshGradients { g.fill(.nan) }
        gradient = g
        gradientIsFresh = true
        return g
    }

    /// Zeroes a fresh gradient buffer, for a backward that adds to it.
    func zeroIfFresh() {
        guard gradientIsFresh, let g = gradient else { return }
        g.zero()
        gradientIsFresh = false
    }

    /// Records that a backward has written (or added to) the gradient buffer.
    func gradientWasWritten() { gradientIsFresh = false }
}

/// A tensor in a computation, with the node that produced it when a gradient is wanted.
public struct Variable {
    public let value: Tensor
    public let node: Node?

    public init(_ value: Tensor, node: Node? = nil) {
        self.value = value
        self.node = node
    }

    public var shape: [Int] { value.shape }
    public var requiresGrad: Bool { node != nil }

    /// The same value cut from the graph.
    public var detached: Variable { Variable(value) }
}

/// Global autograd state: gradient recording, recomputation, and the dropout seed stream.
public enum Autograd {
    nonisolated(unsafe) public private(set) static var isGradEnabled = true
    /// True while a checkpointed segment is re-run in the backward pass: batch norm must not
    /// update its running statistics then, and dropout must draw the masks of the forward pass.
    nonisolated(unsafe) public private(set) static var isRecomputing = false
    /// The next dropout seed; each dropout call takes one. Checkpoint rewinds it for recompute.
    nonisolated(unsafe) public static var dropoutSeed: UInt64 = 0x5EED
    /// For tests: every gradient buffer is filled with NaN when allocated, so that a backward
    /// that was to write a fresh one whole (`recordWriting`) and left any of it shows in the
    /// gradients, whatever the allocator happened to hand out.
    nonisolated(unsafe) public static var poisonsFreshGradients = false

    /// Runs `body` without recording a graph.
    public static func withoutGradient<R>(_ body: () throws -> R) rethrows -> R {
        let saved = isGradEnabled
        isGradEnabled = false
        defer { isGradEnabled = saved }
        return try body()
    }

    static func withGradient<R>(recomputing: Bool, _ body: () throws -> R) rethrows -> R {
        let (savedGrad, savedRecompute) = (isGradEnabled, isRecomputing)
        isGradEnabled = true
        isRecomputing = recomputing
        defer { isGradEnabled = savedGrad; isRecomputing = savedRecompute }
        return try body()
    }

    /// Which examples of the global batch this process's batch holds (its axis 1), while a
    /// data-parallel run trains on a slice: dropout then draws each element's mask by its place
    /// in the global batch, so the slicing changes no mask. nil (one process): local indices.
    nonisolated(unsafe) public static var dropoutExamples: ExampleRange?

    /// Takes the next dropout seed.
    public static func nextDropoutSeed() -> UInt64 {
        dropoutSeed &+= 0x9E37_79B9_7F4A_7C15
        return dropoutSeed
    }

    /// Records a node for `value` if gradients are enabled and any input needs one.
    /// `always` records even when no input needs a gradient: a segment whose parameters are
    /// not among its inputs (a checkpoint) still has gradients to deliver. `backward` adds (`+=`)
    /// into every gradient it is given (zeroed first where nothing was added yet).
    public static func record(_ label: String, _ value: Tensor, inputs: [Variable], always: Bool = false,
                              backward: @escaping (_ gradOutput: Tensor, _ gradInputs: [Tensor?]) -> Void) -> Variable {
        guard isGradEnabled, always || inputs.contains(where: { $0.requiresGrad }) else { return Variable(value) }
        let node = Node(label: label, shape: value.shape, inputs: inputs.map { $0.node },
                        backward: { gradOutput, gradInputs, _ in backward(gradOutput, gradInputs) })
        return Variable(value, node: node)
    }

    /// `record` for a backward that can write the gradients of its first `writable` inputs
    /// instead of adding to them: `fresh[i]` says that nothing was written to `gradInputs[i]` yet
    /// and its contents are undefined, and the backward must then write all of it (`=`, never
    /// reading it); the others it adds to as `record`'s do (zeroed first when fresh, the later
    /// inputs' too: a weight's gradient, fresh only where a test computes the weight). The
    /// buffer's zeroing pass is saved: PyTorch's backward functions likewise return new gradients
    /// and add only where a tensor has several uses. (A node that takes one tensor twice gets it
    /// zeroed, never fresh.)
    public static func recordWriting(_ label: String, _ value: Tensor, inputs: [Variable], writable: Int,
                                     always: Bool = false,
                                     backward: @escaping (_ gradOutput: Tensor, _ gradInputs: [Tensor?], _ fresh: [Bool]) -> Void) -> Variable {
        guard isGradEnabled, always || inputs.contains(where: { $0.requiresGrad }) else { return Variable(value) }
        let node = Node(label: label, shape: value.shape, inputs: inputs.map { $0.node }, writableInputs: writable,
                        backward: backward)
        return Variable(value, node: node)
    }

    /// Back-propagates `seed` (the gradient of `output`, ones for a scalar loss by default) to
    /// every leaf. Each node's gradient and saved tensors are released as soon as its backward
    /// has run, so memory falls as the pass proceeds.
    public static func backward(_ output: Variable, seed: Tensor? = nil) {
        guard let root = output.node else { return }
        let gradient = seed ?? Tensor.filled(output.shape, 1, category: .activations)
        precondition(gradient.shape == root.shape, "backward: seed \(gradient.shape) for output \(root.shape)")
        run(from: root, gradient: gradient)
    }

    /// Called during the backward pass with each leaf (a parameter's node, a checkpoint input)
    /// as soon as no node left in the pass will add to its gradient: the hook of data-parallel
    /// training, which starts reducing a parameter's gradient then (GradientBuckets). A leaf
    /// reached inside a checkpointed segment is reported by the segment's own pass; one used
    /// both inside and outside a segment would be reported twice. Set it outside a pass.
    nonisolated(unsafe) public static var leafGradientCompleted: ((Node) -> Void)?

    static func run(from root: Node, gradient: Tensor) {
        if root.isLeaf {
            Elementwise.accumulate(gradient, into: root.gradientBuffer())
            leafGradientCompleted?(root)
            return
        }
        root.gradient = gradient
        // Every node reachable from the root, in descending creation order.
        var seen = Set<ObjectIdentifier>()
        var order = [Node]()
        var stack = [root]
        while let node = stack.popLast() {
            guard seen.insert(ObjectIdentifier(node)).inserted else { continue }
            order.append(node)
            for case let input? in node.inputs where !input.isLeaf { stack.append(input) }
        }
        order.sort { $0.id > $1.id }
        // For the hook: how many nodes of this pass still have to add to each leaf's gradient.
        let hook = leafGradientCompleted
        var pendingUses = [ObjectIdentifier: Int]()
        if hook != nil {
            for node in order {
                for case let input? in node.inputs where input.isLeaf { pendingUses[ObjectIdentifier(input), default: 0] += 1 }
            }
        }
        func finished(_ node: Node) {
            guard let hook else { return }
            for case let input? in node.inputs where input.isLeaf {
                let id = ObjectIdentifier(input)
                let left = pendingUses[id]! - 1
                pendingUses[id] = left
                if left == 0 { hook(input) }
            }
        }
        for node in order {
            guard let g = node.gradient, let backward = node.backward else {
                node.gradient = nil
                node.backward = nil
                finished(node)
                continue
            }
            let gradInputs = node.inputs.map { $0?.gradientBuffer() }
            let fresh = freshGradients(of: node)
            if let dryRun = DryRun.current {
                let origin = node.origin ?? node.label
                let name = origin.split(separator: " ", maxSplits: 1).last.map(String.init) ?? origin
                dryRun.enter("backward " + name)
            }
            backward(g, gradInputs, fresh)
            for case let input? in node.inputs { input.gradientWasWritten() }
            node.gradient = nil
            node.backward = nil   // frees the saved tensors
            finished(node)
        }
    }
}

extension Autograd {
    /// Which of `node`'s input gradients its backward is to write rather than add to: the fresh
    /// ones it can write (`recordWriting`'s `writable`) whose input it does not take twice; every
    /// other fresh one is zeroed here, just before the backward adds to it.
    static func freshGradients(of node: Node) -> [Bool] {
        node.inputs.enumerated().map { index, input in
            guard let input, input.gradientIsFresh else { return false }
            let uses = node.inputs.reduce(0) { $0 + ($1 === input ? 1 : 0) }
            if index < node.writableInputs && uses == 1 { return true }
            input.zeroIfFresh()
            return false
        }
    }
}

extension Node {
    /// The gradient accumulated in this node (a leaf's buffer), for tests and tools.
    public var gradientForTesting: Tensor? { gradient }
}

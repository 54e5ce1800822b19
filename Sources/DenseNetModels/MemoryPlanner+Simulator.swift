import Kernels
import Runtime

// The planner's stand-ins for `Memory`, `Storage` reference counts and the autograd engine.
// Nothing here allocates a tensor: a "buffer" is an index with a byte count, a category and a
// reference count, and every place where the real code drops its last reference to a
// storage (a local going out of scope, a temporary after the call that used it, a backward
// closure released by `Autograd.run`) is a `release` here.

/// Live and peak bytes per `MemoryCategory`, as `Memory` counts them, for simulated storages.
final class PlanSimulator {
    private var bytes: [Int] = []
    private var categories: [MemoryCategory] = []
    private var references: [Int] = []
    private(set) var active = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    private(set) var total = 0
    private(set) var peak = 0
    private(set) var peakByCategory = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    /// Live bytes per category when `peak` was reached, and what was running then.
    private(set) var activeAtPeak = [Int](repeating: 0, count: MemoryCategory.allCases.count)
    private(set) var peakPhase = "baseline"
    /// What is running now ("forward features.conv0", "backward features.denseblock1"), for reports.
    var phase = "baseline"

    /// A new storage of `elements` floats, with one reference (its owner's).
    func allocate(_ elements: Int, _ category: MemoryCategory) -> Int {
        let id = bytes.count
        let size = Memory.byteCount(elements: elements)
        bytes.append(size)
        categories.append(category)
        references.append(1)
        add(size, category)
        return id
    }

    func retain(_ id: Int) {
        precondition(references[id] > 0, "PlanSimulator: retain of freed buffer \(id)")
        references[id] += 1
    }

    func release(_ id: Int) {
        precondition(references[id] > 0, "PlanSimulator: release of freed buffer \(id)")
        references[id] -= 1
        if references[id] == 0 { remove(bytes[id], categories[id]) }
    }

    /// Scratch storages a kernel allocates and frees within one call, `bytes` in all (already
    /// rounded per storage): they are live together at the call's peak.
    func transient(_ scratchBytes: Int) {
        guard scratchBytes > 0 else { return }
        add(scratchBytes, .scratch)
        remove(scratchBytes, .scratch)
    }

    /// As `Memory.resetPeak()`.
    func resetPeak() {
        peak = total
        peakByCategory = active
        activeAtPeak = active
        peakPhase = phase
    }

    func active(_ category: MemoryCategory) -> Int { active[category.rawValue] }

    private func add(_ size: Int, _ category: MemoryCategory) {
        active[category.rawValue] += size
        total += size
        if active[category.rawValue] > peakByCategory[category.rawValue] {
            peakByCategory[category.rawValue] = active[category.rawValue]
        }
        if total > peak {
            peak = total
            activeAtPeak = active
            peakPhase = phase
        }
    }

    private func remove(_ size: Int, _ category: MemoryCategory) {
        active[category.rawValue] -= size
        total -= size
    }
}

/// A simulated autograd node (`Autograd.Node`): creation order, gradient size, inputs, the
/// buffers its backward closure keeps alive, and that backward's own allocations.
final class PlanNode {
    let id: Int
    let label: String
    /// Elements of the node's output, and so of its gradient buffer.
    let elements: Int
    let inputs: [PlanNode?]
    let isLeaf: Bool
    /// The gradient buffer; for a parameter leaf `PlanNode.parameterGradient` (counted in the baseline).
    var gradient: Int?
    var saved: [Int]
    var backward: ((_ gradOutput: Int, _ gradInputs: [Int?]) -> Void)?

    static let parameterGradient = -1

    init(id: Int, label: String, elements: Int, inputs: [PlanNode?], isLeaf: Bool, gradient: Int?, saved: [Int],
         backward: ((Int, [Int?]) -> Void)?) {
        self.id = id; self.label = label; self.elements = elements; self.inputs = inputs
        self.isLeaf = isLeaf; self.gradient = gradient; self.saved = saved; self.backward = backward
    }
}

/// A simulated `Variable`: a reference to a buffer (possibly a view of part of it), its shape,
/// and its node. Holding a `PlanVariable` holds one reference to `buffer`, given up with `drop`.
struct PlanVariable {
    let buffer: Int
    let shape: [Int]
    let node: PlanNode?
    var count: Int { shape.reduce(1, *) }
}

/// The simulated autograd engine and differentiable operations (mirroring Autograd/Graph.swift,
/// Checkpoint.swift and Functions.swift), with each kernel's scratch from its size query.
final class PlanAutograd {
    let sim: PlanSimulator
    let threads: Int
    /// Whether the threads of one kernel call hold their column tiles at the same time (the
    /// upper bound) or one after another (the lower bound).
    let concurrentTiles: Bool
    private var nextID = 0
    private(set) var isGradEnabled = true
    /// The leaf standing for every parameter: it needs a gradient, whose buffer already exists.
    private(set) lazy var parameter = makeNode(label: "parameter", elements: 0, inputs: [], isLeaf: true,
                                               gradient: PlanNode.parameterGradient, saved: [], backward: nil)

    init(_ sim: PlanSimulator, threads: Int, concurrentTiles: Bool) {
        self.sim = sim
        self.threads = threads
        self.concurrentTiles = concurrentTiles
    }

    // MARK: References

    /// Another reference to `v` (a copy of a Variable or a view of its storage).
    func keep(_ v: PlanVariable) -> PlanVariable {
        sim.retain(v.buffer)
        return v
    }

    /// A view `shape` of `v`'s storage (a new reference to the same buffer).
    func view(_ v: PlanVariable, shape: [Int], node: PlanNode? = nil) -> PlanVariable {
        sim.retain(v.buffer)
        return PlanVariable(buffer: v.buffer, shape: shape, node: node)
    }

    /// The reference goes away (a local leaves its scope, a temporary after its call).
    func drop(_ v: PlanVariable) { sim.release(v.buffer) }
    func drop(_ vs: [PlanVariable]) { vs.forEach(drop) }

    func allocate(_ shape: [Int], _ category: MemoryCategory = .activations) -> PlanVariable {
        PlanVariable(buffer: sim.allocate(shape.reduce(1, *), category), shape: shape, node: nil)
    }

    // MARK: Graph

    private func makeNode(label: String, elements: Int, inputs: [PlanNode?], isLeaf: Bool, gradient: Int?,
                          saved: [Int], backward: ((Int, [Int?]) -> Void)?) -> PlanNode {
        nextID += 1
        return PlanNode(id: nextID, label: label, elements: elements, inputs: inputs, isLeaf: isLeaf,
                        gradient: gradient, saved: saved, backward: backward)
    }

    /// `Autograd.record`: a node keeping `saved` alive, if gradients are on and an input (or,
    /// with `parameters`, a parameter) needs one. Takes ownership of `value`'s reference.
    func record(_ label: String, _ value: PlanVariable, inputs: [PlanNode?], parameters: Bool, always: Bool = false,
                saved: [Int], backward: @escaping (_ gradOutput: Int, _ gradInputs: [Int?]) -> Void) -> PlanVariable {
        let allInputs = inputs + (parameters ? [parameter] : [])
        guard isGradEnabled, always || allInputs.contains(where: { $0 != nil }) else { return value }
        saved.forEach(sim.retain)
        let node = makeNode(label: label, elements: value.count, inputs: allInputs, isLeaf: false, gradient: nil,
                            saved: saved, backward: backward)
        return PlanVariable(buffer: value.buffer, shape: value.shape, node: node)
    }

    func withoutGradient<R>(_ body: () -> R) -> R {
        let saved = isGradEnabled
        isGradEnabled = false
        defer { isGradEnabled = saved }
        return body()
    }

    func withGradient<R>(_ body: () -> R) -> R {
        let saved = isGradEnabled
        isGradEnabled = true
        defer { isGradEnabled = saved }
        return body()
    }

    /// `Node.gradientBuffer()`: zeros of the node's shape the first time it is asked for.
    private func gradientBuffer(_ node: PlanNode) -> Int {
        if let g = node.gradient { return g }
        let g = sim.allocate(node.elements, .activations)
        node.gradient = g
        return g
    }

    /// What `Autograd.run` does once a node's backward has run (or it has none).
    private func finish(_ node: PlanNode) {
        if let g = node.gradient, !node.isLeaf { sim.release(g) }
        node.gradient = nil
        node.saved.forEach(sim.release)
        node.saved = []
        node.backward = nil
    }

    /// `Autograd.run`: every node reachable from `root` in descending creation order; each asks
    /// its inputs for their gradient buffers, runs, then gives up its gradient and saved tensors.
    func run(from root: PlanNode, gradient: Int) {
        sim.retain(gradient)
        root.gradient = gradient
        var seen = Set<Int>()
        var order = [PlanNode]()
        var stack = [root]
        while let node = stack.popLast() {
            guard seen.insert(node.id).inserted else { continue }
            order.append(node)
            for case let input? in node.inputs where !input.isLeaf { stack.append(input) }
        }
        order.sort { $0.id > $1.id }
        for node in order {
            guard let g = node.gradient, let backward = node.backward else {
                finish(node)
                continue
            }
            let gradInputs = node.inputs.map { $0.map(gradientBuffer) }
            sim.phase = "backward \(node.label)"
            backward(g, gradInputs)
            finish(node)
        }
    }

    /// `Autograd.checkpoint`: `body` runs without a graph; its backward re-runs it with one and
    /// back-propagates through it at once, into the outer gradient buffers.
    func checkpoint(_ label: String, _ inputs: [PlanVariable], _ body: @escaping ([PlanVariable]) -> PlanVariable) -> PlanVariable {
        guard isGradEnabled else { return body(inputs) }
        let output = withoutGradient { body(inputs) }
        return record(label, output, inputs: inputs.map(\.node), parameters: false, always: true,
                      saved: inputs.map(\.buffer)) { [unowned self] gradOutput, gradInputs in
            let leaves = zip(inputs, gradInputs).map { value, g in
                PlanVariable(buffer: value.buffer, shape: value.shape, node: g.map {
                    self.makeNode(label: "\(label).input", elements: value.count, inputs: [], isLeaf: true,
                                  gradient: $0, saved: [], backward: nil)
                })
            }
            let recomputed = withGradient { body(leaves) }
            if let node = recomputed.node { run(from: node, gradient: gradOutput) }
            drop(recomputed)
        }
    }

    func checkpoint(_ label: String, _ input: PlanVariable, _ body: @escaping (PlanVariable) -> PlanVariable) -> PlanVariable {
        checkpoint(label, [input]) { body($0[0]) }
    }

    // MARK: Operations (Functional.*): each returns its output with one reference

    private func forward(_ label: String) { sim.phase = "forward \(label)" }

    func conv2d(_ x: PlanVariable, outChannels: Int, _ p: ConvParameters, label: String) -> PlanVariable {
        forward(label)
        let weight = [outChannels, x.shape[0], p.kernelH, p.kernelW]
        let y = allocate(Conv2d.outputShape(input: x.shape, weight: weight, p))
        sim.transient(Conv2d.forwardScratchBytes(input: x.shape, weight: weight, p, threads: threads, concurrent: concurrentTiles))
        let (threads, concurrentTiles) = (threads, concurrentTiles)
        return record(label, y, inputs: [x.node], parameters: true, saved: [x.buffer]) { [unowned self] _, g in
            sim.transient(Conv2d.backwardScratchBytes(input: x.shape, weight: weight, p, inputGradient: g[0] != nil,
                                                      weightGradient: true, threads: threads, concurrent: concurrentTiles))
        }
    }

    func linear(_ x: PlanVariable, outFeatures: Int, label: String) -> PlanVariable {
        forward(label)
        let (inputs, batch) = (x.shape[0], x.shape[1])
        let y = allocate([outFeatures, batch])
        sim.transient(Gemm.multiplyScratchBytes(m: outFeatures, n: batch, k: inputs, threads: threads))
        let threads = threads
        return record(label, y, inputs: [x.node], parameters: true, saved: [x.buffer]) { [unowned self] _, g in
            let dx = g[0] != nil ? Gemm.multiplyScratchBytes(m: inputs, n: batch, k: outFeatures, threads: threads) : 0
            let dW = Gemm.multiplyScratchBytes(m: outFeatures, n: inputs, k: batch, threads: threads)
            sim.transient(max(dx, dW))
        }
    }

    /// Training-mode batch norm: output, then the batch mean and inverse deviation (C each),
    /// kept with the input for backward.
    func batchNorm(_ x: PlanVariable, label: String) -> PlanVariable {
        forward(label)
        let y = allocate(x.shape)
        let mean = allocate([x.shape[0]]), invStd = allocate([x.shape[0]])
        let out = record(label, y, inputs: [x.node], parameters: true, saved: [x.buffer, mean.buffer, invStd.buffer]) { _, _ in }
        drop(mean)
        drop(invStd)
        return out
    }

    /// ReLU keeps its own output.
    func relu(_ x: PlanVariable, label: String) -> PlanVariable {
        forward(label)
        let y = allocate(x.shape)
        return record(label, y, inputs: [x.node], parameters: false, saved: [y.buffer]) { _, _ in }
    }

    func maxPool2d(_ x: PlanVariable, _ p: PoolParameters, label: String) -> PlanVariable {
        forward(label)
        let y = allocate(Pooling.outputShape(input: x.shape, p))
        sim.transient(Pooling.maxForwardScratchBytes(input: x.shape, threads: threads))
        return record(label, y, inputs: [x.node], parameters: false, saved: [x.buffer]) { _, _ in }
    }

    func avgPool2d(_ x: PlanVariable, _ p: PoolParameters, label: String) -> PlanVariable {
        forward(label)
        let y = allocate(Pooling.outputShape(input: x.shape, p))
        return record(label, y, inputs: [x.node], parameters: false, saved: []) { _, _ in }
    }

    func globalAvgPool(_ x: PlanVariable, label: String) -> PlanVariable {
        forward(label)
        let y = allocate([x.shape[0], x.shape[1]])
        return record(label, y, inputs: [x.node], parameters: false, saved: []) { _, _ in }
    }

    /// Dropout keeps nothing (its mask is a seed); p = 0 returns the input itself.
    func dropout(_ x: PlanVariable, p: Double, label: String) -> PlanVariable {
        guard p > 0 else { return keep(x) }
        forward(label)
        let y = allocate(x.shape)
        return record(label, y, inputs: [x.node], parameters: false, saved: []) { _, _ in }
    }

    func concat(_ xs: [PlanVariable], label: String) -> PlanVariable {
        forward(label)
        var shape = xs[0].shape
        shape[0] = xs.reduce(0) { $0 + $1.shape[0] }
        let y = allocate(shape)
        return record(label, y, inputs: xs.map(\.node), parameters: false, saved: []) { _, _ in }
    }

    func add(_ a: PlanVariable, _ b: PlanVariable, label: String) -> PlanVariable {
        forward(label)
        let y = allocate(a.shape)
        return record(label, y, inputs: [a.node, b.node], parameters: false, saved: []) { _, _ in }
    }

    /// The loss, a [1] tensor; cross-entropy keeps the logits.
    func crossEntropy(_ logits: PlanVariable) -> PlanVariable {
        forward("loss")
        let y = allocate([1])
        return record("crossEntropy", y, inputs: [logits.node], parameters: false, saved: [logits.buffer]) { _, _ in }
    }

    func meanSquaredError(_ prediction: PlanVariable) -> PlanVariable {
        forward("loss")
        let y = allocate([1])
        return record("meanSquaredError", y, inputs: [prediction.node], parameters: false, saved: []) { _, _ in }
    }

    /// An operation whose value is a view of existing storage (taking one more reference).
    func recordView(_ label: String, of v: PlanVariable, shape: [Int], inputs: [PlanNode?]) -> PlanVariable {
        record(label, view(v, shape: shape), inputs: inputs, parameters: false, saved: []) { _, _ in }
    }
}

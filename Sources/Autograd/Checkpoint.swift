import Runtime

extension Autograd {
    /// Recompute-on-backward (gradient checkpointing, Chen et al. 2016; the device of Pleiss et
    /// al. 2017's memory-efficient DenseNet): `body` runs without recording a graph, so only
    /// `inputs` (held by the caller anyway) and the output are kept; in the backward pass the
    /// segment is run again with recording on and back-propagated at once.
    ///
    /// The recompute reproduces the forward exactly: dropout draws the same seeds (the seed
    /// stream is rewound), and batch norm does not update its running statistics a second time
    /// (`isRecomputing`), the known fault of PyTorch's checkpointed DenseNet.
    public static func checkpoint(_ label: String = "checkpoint", _ inputs: [Variable],
                                  _ body: @escaping ([Variable]) -> Variable) -> Variable {
        guard isGradEnabled else { return body(inputs) }
        let seedAtForward = dropoutSeed
        let values = inputs.map { $0.value }
        let output = withoutGradient { body(inputs.map { $0.detached }) }
        let seedAfterForward = dropoutSeed
        // Recorded even when no input needs a gradient: the segment's parameters do.
        return record(label, output.value, inputs: inputs, always: true) { gradOutput, gradInputs in
            // Inputs become leaves whose gradients land straight in the outer gradient buffers.
            let leaves = zip(values, gradInputs).map { value, g in
                Variable(value, node: g.map { Node.leaf("\(label).input", gradient: $0) })
            }
            let savedSeed = dropoutSeed
            dropoutSeed = seedAtForward
            let recomputed = withGradient(recomputing: true) { body(leaves) }
            assert(dropoutSeed == seedAfterForward, "checkpoint: the recompute drew a different number of dropout seeds")
            dropoutSeed = savedSeed
            if let node = recomputed.node { run(from: node, gradient: gradOutput) }
        }
    }

    /// Applies `body` as a checkpointed segment to one input.
    public static func checkpoint(_ label: String = "checkpoint", _ input: Variable,
                                  _ body: @escaping (Variable) -> Variable) -> Variable {
        checkpoint(label, [input]) { body($0[0]) }
    }
}

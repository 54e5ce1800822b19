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
        let tape = RecomputeTape()
        recordingTapes.append(tape)
        let output = withoutGradient { body(inputs.map { $0.detached }) }
        recordingTapes.removeLast()
        let seedAfterForward = dropoutSeed
        // Recorded even when no input needs a gradient: the segment's parameters do.
        return record(label, output.value, inputs: inputs, always: true) { gradOutput, gradInputs in
            // Inputs become leaves whose gradients land straight in the outer gradient buffers.
            let leaves = zip(values, gradInputs).map { value, g in
                Variable(value, node: g.map { Node.leaf("\(label).input", gradient: $0) })
            }
            let savedSeed = dropoutSeed
            dropoutSeed = seedAtForward
            let savedTape = replayingTape
            tape.cursor = 0
            replayingTape = tape
            let recomputed = withGradient(recomputing: true) { body(leaves) }
            replayingTape = savedTape
            assert(tape.cursor == tape.entries.count, "checkpoint: the recompute used \(tape.cursor) of \(tape.entries.count) saved values")
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

/// Values a checkpointed segment's forward computed that its recompute must reuse, not
/// recompute: synchronised batch statistics (BatchNormalization+Synchronized.swift), whose
/// recomputation would be a second all-reduce. Kept in the order they were saved.
final class RecomputeTape {
    var entries: [[Float]] = []
    var cursor = 0
}

extension Autograd {
    /// The tapes of the checkpointed segments whose forward is running now (nested segments
    /// each get a copy of what runs inside them).
    nonisolated(unsafe) static var recordingTapes: [RecomputeTape] = []
    /// The tape of the segment being recomputed now.
    nonisolated(unsafe) static var replayingTape: RecomputeTape?

    /// Saves `values` for the recompute of every checkpointed segment running now; nothing
    /// outside one.
    public static func saveForRecompute(_ values: [Float]) {
        for tape in recordingTapes { tape.entries.append(values) }
    }

    /// In a recompute, the next values its forward saved (in order); nil outside a recompute or
    /// when the forward saved nothing more.
    public static func takeSavedForRecompute() -> [Float]? {
        guard isRecomputing, let tape = replayingTape, tape.cursor < tape.entries.count else { return nil }
        defer { tape.cursor += 1 }
        return tape.entries[tape.cursor]
    }
}

import Runtime

/// A fully connected layer on channel-major features: x is (in, N) (features by samples), so
/// y = W·x is one row-major GEMM with the PyTorch-shaped weight (out, in).
public enum Linear {
    static func check(_ name: String, _ x: Tensor, _ weight: Tensor) -> (outputs: Int, inputs: Int, batch: Int) {
        precondition(weight.rank == 2 && weight.isContiguous, "Linear.\(name): weight \(weight.shape) must be a contiguous (out, in) matrix")
        precondition(x.rank == 2 && x.isContiguous && x.shape[0] == weight.shape[1],
                     "Linear.\(name): x \(x.shape) vs weight \(weight.shape): need a contiguous (\(weight.shape[1]), N) matrix")
        return (weight.shape[0], weight.shape[1], x.shape[1])
    }

    /// y (out, N) = weight (out, in) · x (in, N) + bias (out).
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, into y: Tensor) {
        let span = Profile.begin(.linear); defer { Profile.end(span) }
        let (outputs, inputs, batch) = check("forward", x, weight)
        precondition(y.shape == [outputs, batch] && y.isContiguous, "Linear.forward: y \(y.shape) vs expected [\(outputs), \(batch)]")
        if let dryRun = DryRun.current {
            dryRun.scratch(Gemm.multiplyScratchBytes(m: outputs, n: batch, k: inputs, threads: dryRun.threads))
            return
        }
        let py = y.pointer
        if let bias {
            precondition(bias.count == outputs && bias.isContiguous, "Linear.forward: bias \(bias.shape) vs weight \(weight.shape)")
            let pb = bias.pointer
            for o in 0..<outputs { (py + o * batch).update(repeating: pb[o], count: batch) }
        }
        Gemm.multiply(m: outputs, n: batch, k: inputs, a: weight.pointer, lda: inputs, b: x.pointer, ldb: batch,
                      beta: bias == nil ? 0 : 1, c: py, ldc: batch)
    }

    /// dx += weightᵀ·dy, dWeight += dy·xᵀ, dBias += row sums of dy.
    public static func backward(_ dy: Tensor, x: Tensor, weight: Tensor, dx: Tensor?, dWeight: Tensor?, dBias: Tensor?) {
        let span = Profile.begin(.linear); defer { Profile.end(span) }
        let (outputs, inputs, batch) = check("backward", x, weight)
        precondition(dy.shape == [outputs, batch] && dy.isContiguous, "Linear.backward: dy \(dy.shape) vs expected [\(outputs), \(batch)]")
        if let dryRun = DryRun.current {
            // The two products run one after the other: the larger scratch counts.
            let dxBytes = dx == nil ? 0 : Gemm.multiplyScratchBytes(m: inputs, n: batch, k: outputs, threads: dryRun.threads)
            let dWBytes = dWeight == nil ? 0 : Gemm.multiplyScratchBytes(m: outputs, n: inputs, k: batch, threads: dryRun.threads)
            dryRun.scratch(max(dxBytes, dWBytes))
            return
        }
        let pdy = dy.pointer
        if let dx {
            precondition(dx.shape == x.shape && dx.isContiguous, "Linear.backward: dx \(dx.shape) vs x \(x.shape)")
            Gemm.multiply(transA: true, m: inputs, n: batch, k: outputs, a: weight.pointer, lda: inputs,
                          b: pdy, ldb: batch, beta: 1, c: dx.pointer, ldc: batch)
        }
        if let dWeight {
            precondition(dWeight.shape == weight.shape && dWeight.isContiguous, "Linear.backward: dWeight \(dWeight.shape) vs weight \(weight.shape)")
            Gemm.multiply(transB: true, m: outputs, n: inputs, k: batch, a: pdy, lda: batch,
                          b: x.pointer, ldb: batch, beta: 1, c: dWeight.pointer, ldc: inputs)
        }
        if let dBias {
            precondition(dBias.count == outputs && dBias.isContiguous, "Linear.backward: dBias \(dBias.shape) vs weight \(weight.shape)")
            Elementwise.accumulateRowSums(pdy, rows: outputs, columns: batch, into: dBias.pointer)
        }
    }
}

import Runtime

/// ReLU on contiguous tensors of any shape, e.g. `(C, N, H, W)` activations or channel views.
public enum Activation {
    /// y = max(x, 0). y may be x (in place).
    public static func reluForward(_ x: Tensor, into y: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        precondition(x.shape == y.shape, "Activation.reluForward: x \(x.shape) vs y \(y.shape)")
        precondition(x.isContiguous && y.isContiguous, "Activation.reluForward: x \(x.shape) and y \(y.shape) must be contiguous")
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer
        Elementwise.forRanges(x.count) { r in
            var i = r.lowerBound
            while i + Elementwise.lanes <= r.upperBound {
                Elementwise.store(Elementwise.relu(Elementwise.load(px, i)), py, i)
                i += Elementwise.lanes
            }
            while i < r.upperBound { py[i] = max(px[i], 0); i += 1 }
        }
    }

    /// dx += dy·[y > 0]. dx may be dy only if the caller wants dy replaced by 2·masked dy; use
    /// separate tensors.
    public static func reluBackward(_ dy: Tensor, y: Tensor, dx: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        precondition(dy.shape == y.shape && dy.shape == dx.shape,
                     "Activation.reluBackward: dy \(dy.shape) vs y \(y.shape) vs dx \(dx.shape)")
        precondition(dy.isContiguous && y.isContiguous && dx.isContiguous,
                     "Activation.reluBackward: dy \(dy.shape), y \(y.shape), dx \(dx.shape) must be contiguous")
        if DryRun.isActive { return }
        let pdy = dy.pointer, py = y.pointer, pdx = dx.pointer
        let zero = Elementwise.Vector()
        Elementwise.forRanges(dy.count) { r in
            var i = r.lowerBound
            while i + Elementwise.lanes <= r.upperBound {
                let g = Elementwise.load(pdy, i).replacing(with: 0, where: Elementwise.load(py, i) .<= zero)
                Elementwise.store(Elementwise.load(pdx, i) + g, pdx, i)
                i += Elementwise.lanes
            }
            while i < r.upperBound { if py[i] > 0 { pdx[i] += pdy[i] }; i += 1 }
        }
    }
}

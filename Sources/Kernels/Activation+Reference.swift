import Runtime

/// Element-by-element ReLU, for tests.
extension Activation {
    public static func reluForwardReference(_ x: Tensor, into y: Tensor) {
        precondition(x.shape == y.shape, "Activation.reluForward: x \(x.shape) vs y \(y.shape)")
        y.assign(Tensor(shape: x.shape, values: x.array.map { $0 > 0 ? $0 : 0 }, category: .scratch))
    }

    public static func reluBackwardReference(_ dy: Tensor, y: Tensor, dx: Tensor) {
        precondition(dy.shape == y.shape && dy.shape == dx.shape,
                     "Activation.reluBackward: dy \(dy.shape) vs y \(y.shape) vs dx \(dx.shape)")
        let g = dy.array, v = y.array, d = dx.array
        var out = d
        for i in 0..<out.count where v[i] > 0 { out[i] = d[i] + g[i] }
        dx.assign(Tensor(shape: dx.shape, values: out, category: .scratch))
    }
}

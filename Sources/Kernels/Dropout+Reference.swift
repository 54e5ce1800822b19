import Runtime

/// Dropout with the mask drawn sequentially from `SeededGenerator(seed:)`, for tests: the fast
/// version's counter-based mask must be the same stream.
extension Dropout {
    public static func maskReference(count: Int, p: Float, seed: UInt64) -> [Bool] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextUniform() >= p }
    }

    public static func forwardReference(_ x: Tensor, p: Float, seed: UInt64, into y: Tensor) {
        let mask = maskReference(count: x.count, p: p, seed: seed)
        let values = zip(x.array, mask).map { $1 ? $0 / (1 - p) : 0 }
        y.assign(Tensor(shape: y.shape, values: values, category: .scratch))
    }

    public static func backwardReference(_ dy: Tensor, p: Float, seed: UInt64, dx: Tensor) {
        let mask = maskReference(count: dy.count, p: p, seed: seed)
        var values = dx.array
        for (i, (g, keep)) in zip(dy.array, mask).enumerated() where keep { values[i] += g / (1 - p) }
        dx.assign(Tensor(shape: dx.shape, values: values, category: .scratch))
    }
}

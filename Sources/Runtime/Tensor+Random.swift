import Foundation

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same stream on every
/// machine, which tests, dropout masks and weight initialisation rely on.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / Float(1 << 24))
    }

    /// Standard normal (Box–Muller).
    @inlinable
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUniform(), 1e-7)
        let u2 = nextUniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}

extension Tensor {
    /// Normal(0, std²) values from `seed`.
    public static func randomNormal(_ shape: [Int], std: Float = 1, seed: UInt64,
                                    category: MemoryCategory = .activations) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let t = Tensor(shape: shape, category: category)
        if t.isVirtual { return t }
        let p = t.pointer
        for i in 0..<t.count { p[i] = rng.nextNormal() * std }
        return t
    }

    /// Uniform values in [low, high) from `seed`.
    public static func randomUniform(_ shape: [Int], low: Float = -1, high: Float = 1, seed: UInt64,
                                     category: MemoryCategory = .activations) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let t = Tensor(shape: shape, category: category)
        if t.isVirtual { return t }
        let p = t.pointer
        for i in 0..<t.count { p[i] = low + (high - low) * rng.nextUniform() }
        return t
    }
}

import Runtime

/// Inverted dropout with a counter-based mask: element i is kept when the i-th output of
/// SplitMix64 seeded with `seed` (its top 24 bits as a uniform in [0, 1)) is at least p. The mask
/// is a pure function of (seed, i), so forward, backward and a recompute agree without storing it,
/// and any range of elements can be generated independently (the threads split the tensor).
public enum Dropout {
    /// The i-th (0-based) output of `SeededGenerator(seed:)`, computed directly.
    @inline(__always)
    static func bits(seed: UInt64, index: Int) -> UInt64 {
        var z = seed &+ (UInt64(truncatingIfNeeded: index) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Whether element `index` is kept: uniform (top 24 bits) ≥ p, i.e. top24 ≥ threshold.
    @inline(__always)
    static func keeps(seed: UInt64, index: Int, threshold: UInt64) -> Bool {
        bits(seed: seed, index: index) >> 40 >= threshold
    }

    /// The smallest 24-bit integer k with Float(k)·2⁻²⁴ ≥ p: comparing integers gives exactly the
    /// float comparison `nextUniform() >= p`.
    static func threshold(_ p: Float) -> UInt64 {
        var k = UInt64((Double(p) * 16_777_216).rounded(.down))
        while k > 0 && Float(k - 1) * (1.0 / 16_777_216) >= p { k -= 1 }
        while Float(k) * (1.0 / 16_777_216) < p { k += 1 }
        return k
    }

    static func check(_ name: String, _ a: Tensor, _ b: Tensor, _ p: Float) {
        precondition(a.shape == b.shape && a.isContiguous && b.isContiguous,
                     "Dropout.\(name): \(a.shape) vs \(b.shape) (both contiguous)")
        precondition(p >= 0 && p < 1, "Dropout.\(name): p \(p) must be in [0, 1)")
    }

    /// y = x·mask/(1−p); the mask is a pure function of (seed, element index) — no mask is stored,
    /// backward and recompute regenerate it. p = 0 copies. y may be x.
    // x, y: any shape, elements indexed in row-major order.
    /// With `examples`, x is one rank's slice (axis 1) of a global batch and each element takes
    /// the mask of its place in the global tensor, so that the slicing changes no mask.
    public static func forward(_ x: Tensor, p: Float, seed: UInt64, examples: ExampleRange? = nil, into y: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        check("forward", x, y, p)
        if DryRun.isActive { return }
        if p == 0 { Elementwise.copy(x, into: y); return }
        let px = x.pointer, py = y.pointer
        let scale = 1 / (1 - p), limit = threshold(p)
        if let examples {
            forGlobalIndices(x.shape, examples) { i, global in
                py[i] = keeps(seed: seed, index: global, threshold: limit) ? px[i] * scale : 0
            }
            return
        }
        Elementwise.forRanges(x.count, unitCost: 4) { r in
            for i in r { py[i] = keeps(seed: seed, index: i, threshold: limit) ? px[i] * scale : 0 }
        }
    }

    /// dx += dy·mask/(1−p) with the forward's mask.
    public static func backward(_ dy: Tensor, p: Float, seed: UInt64, examples: ExampleRange? = nil, dx: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        check("backward", dy, dx, p)
        if DryRun.isActive { return }
        if p == 0 { Elementwise.accumulate(dy, into: dx); return }
        let pdy = dy.pointer, pdx = dx.pointer
        let scale = 1 / (1 - p), limit = threshold(p)
        if let examples {
            forGlobalIndices(dy.shape, examples) { i, global in
                if keeps(seed: seed, index: global, threshold: limit) { pdx[i] += pdy[i] * scale }
            }
            return
        }
        Elementwise.forRanges(dy.count, unitCost: 4) { r in
            for i in r where keeps(seed: seed, index: i, threshold: limit) { pdx[i] += pdy[i] * scale }
        }
    }

    /// Calls `body(i, g)` for every element i of a tensor of `shape` (C, n, ...) that holds
    /// examples `examples.offset ..< offset + n` of a global batch, g being the row-major index of
    /// the same element in the global (C, globalCount, ...) tensor.
    static func forGlobalIndices(_ shape: [Int], _ examples: ExampleRange, _ body: (Int, Int) -> Void) {
        precondition(shape.count >= 2 && examples.offset + shape[1] <= examples.globalCount,
                     "Dropout: tensor \(shape) does not hold examples \(examples.offset)..<\(examples.offset + (shape.count > 1 ? shape[1] : 0)) of a batch of \(examples.globalCount) on axis 1")
        let n = shape[1], rows = shape[0] * n
        guard rows > 0 else { return }
        let inner = shape.dropFirst(2).reduce(1, *)
        Elementwise.forRanges(rows, unitCost: 4 * inner) { r in
            for row in r {
                let (c, j) = row.quotientAndRemainder(dividingBy: n)
                let local = row * inner, global = (c * examples.globalCount + examples.offset + j) * inner
                for t in 0..<inner { body(local + t, global + t) }
            }
        }
    }
}

/// The examples a tensor's axis 1 holds within a global batch (a data-parallel rank's slice):
/// `offset ..< offset + n` of `globalCount`.
public struct ExampleRange: Equatable, Sendable {
    public let offset: Int
    public let globalCount: Int

    public init(offset: Int, globalCount: Int) {
        precondition(offset >= 0 && globalCount >= offset, "ExampleRange: offset \(offset) of \(globalCount)")
        self.offset = offset
        self.globalCount = globalCount
    }
}

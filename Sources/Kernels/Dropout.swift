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
    public static func forward(_ x: Tensor, p: Float, seed: UInt64, into y: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        check("forward", x, y, p)
        if DryRun.isActive { return }
        if p == 0 { Elementwise.copy(x, into: y); return }
        let px = x.pointer, py = y.pointer
        let scale = 1 / (1 - p), limit = threshold(p)
        Elementwise.forRanges(x.count, unitCost: 4) { r in
            for i in r { py[i] = keeps(seed: seed, index: i, threshold: limit) ? px[i] * scale : 0 }
        }
    }

    /// dx += dy·mask/(1−p) with the forward's mask.
    public static func backward(_ dy: Tensor, p: Float, seed: UInt64, dx: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        check("backward", dy, dx, p)
        if DryRun.isActive { return }
        if p == 0 { Elementwise.accumulate(dy, into: dx); return }
        let pdy = dy.pointer, pdx = dx.pointer
        let scale = 1 / (1 - p), limit = threshold(p)
        Elementwise.forRanges(dy.count, unitCost: 4) { r in
            for i in r where keeps(seed: seed, index: i, threshold: limit) { pdx[i] += pdy[i] * scale }
        }
    }
}

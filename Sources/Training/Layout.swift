import Runtime

/// Conversions between PyTorch's batch-major layout and the runtime's channel-major one.
public enum Layout {
    /// Swaps the first two dimensions: `(N, C, H, W)` ↔ `(C, N, H, W)`, `(N, classes)` ↔
    /// `(classes, N)`, `(N, F)` ↔ `(F, N)`. A new contiguous tensor of category `category`.
    public static func swapLeadingDimensions(_ t: Tensor, category: MemoryCategory = .activations) -> Tensor {
        precondition(t.rank >= 2, "Layout.swapLeadingDimensions: tensor \(t.shape) needs at least two dimensions")
        let source = t.isContiguous ? t : t.copy()
        let (a, b) = (t.shape[0], t.shape[1])
        let inner = t.shape.dropFirst(2).reduce(1, *)
        let out = Tensor(shape: [b, a] + t.shape.dropFirst(2), category: category)
        let src = source.pointer, dst = out.pointer
        // (a, b, inner) → (b, a, inner)
        for i in 0..<a {
            for j in 0..<b {
                (dst + (j * a + i) * inner).update(from: src + (i * b + j) * inner, count: inner)
            }
        }
        return withExtendedLifetime(source) { out }
    }
}

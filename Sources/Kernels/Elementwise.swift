import Runtime

/// Whole-tensor elementwise operations on contiguous tensors (any shape, e.g. channel views),
/// split into one contiguous range per thread when large.
public enum Elementwise {
    static func checkContiguous(_ name: String, _ tensors: Tensor...) {
        for t in tensors {
            precondition(t.isContiguous, "Elementwise.\(name): tensor \(t.shape) strides \(t.strides) is not contiguous")
        }
    }

    /// y = a + b. y may be a or b.
    public static func add(_ a: Tensor, _ b: Tensor, into y: Tensor) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        precondition(a.shape == b.shape && a.shape == y.shape, "Elementwise.add: a \(a.shape) vs b \(b.shape) vs y \(y.shape)")
        checkContiguous("add", a, b, y)
        if DryRun.isActive { return }
        let pa = a.pointer, pb = b.pointer, py = y.pointer
        forRanges(y.count) { r in
            var i = r.lowerBound
            while i + lanes <= r.upperBound { store(load(pa, i) + load(pb, i), py, i); i += lanes }
            while i < r.upperBound { py[i] = pa[i] + pb[i]; i += 1 }
        }
    }

    /// y += scale·x.
    public static func accumulate(_ x: Tensor, into y: Tensor, scale: Float = 1) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        precondition(x.shape == y.shape, "Elementwise.accumulate: x \(x.shape) vs y \(y.shape)")
        checkContiguous("accumulate", x, y)
        if DryRun.isActive { return }
        accumulate(x.pointer, into: y.pointer, count: y.count, scale: scale)
    }

    /// y[0..<count] += scale·x[0..<count], parallel.
    static func accumulate(_ px: UnsafePointer<Float>, into py: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        forRanges(count) { r in accumulateRange(px, into: py, r, scale: scale) }
    }

    /// y[r] += scale·x[r] on the calling thread (Concat's backward runs it on the slices of one
    /// parallel region).
    @inline(__always)
    static func accumulateRange(_ px: UnsafePointer<Float>, into py: UnsafeMutablePointer<Float>, _ r: Range<Int>,
                                scale: Float) {
        var i = r.lowerBound
        if scale == 1 {
            while i + lanes <= r.upperBound { store(load(py, i) + load(px, i), py, i); i += lanes }
            while i < r.upperBound { py[i] += px[i]; i += 1 }
        } else {
            let s = Vector(repeating: scale)
            while i + lanes <= r.upperBound { store(load(py, i) + s * load(px, i), py, i); i += lanes }
            while i < r.upperBound { py[i] += scale * px[i]; i += 1 }
        }
    }

    /// x *= s, in place.
    public static func scale(_ x: Tensor, by s: Float) {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        checkContiguous("scale", x)
        if DryRun.isActive { return }
        let p = x.pointer
        let v = Vector(repeating: s)
        forRanges(x.count) { r in
            var i = r.lowerBound
            while i + lanes <= r.upperBound { store(load(p, i) * v, p, i); i += lanes }
            while i < r.upperBound { p[i] *= s; i += 1 }
        }
    }

    /// Σ x, accumulated in Double.
    public static func sum(_ x: Tensor) -> Double {
        let span = Profile.begin(.elementwise); defer { Profile.end(span) }
        checkContiguous("sum", x)
        if DryRun.isActive { return 0 }
        let p = x.pointer, count = x.count
        let n = parts(count)
        if n == 1 { return sumDouble(p, count) }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: n) { partial in
            Parallel.forEach(n) { part in
                let r = Parallel.chunk(part, of: n, count: count)
                partial[part] = sumDouble(p + r.lowerBound, r.count)
            }
            return partial.reduce(0, +)
        }
    }

    /// y = x.
    public static func copy(_ x: Tensor, into y: Tensor) {
        let span = Profile.begin(.concatCopy); defer { Profile.end(span) }
        precondition(x.shape == y.shape, "Elementwise.copy: x \(x.shape) vs y \(y.shape)")
        checkContiguous("copy", x, y)
        if DryRun.isActive { return }
        copy(x.pointer, into: y.pointer, count: y.count)
    }

    /// y[0..<count] = x[0..<count], parallel.
    static func copy(_ px: UnsafePointer<Float>, into py: UnsafeMutablePointer<Float>, count: Int) {
        if px == UnsafePointer(py) { return }
        forRanges(count) { r in
            (py + r.lowerBound).update(from: px + r.lowerBound, count: r.count)
        }
    }
}

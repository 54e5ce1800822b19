import Runtime

// Shared inner-loop helpers of the memory-bound kernels (batch norm, pooling, elementwise, ...):
// eight-lane float vectors (one AVX register) loaded and stored unaligned, reductions that sum
// in Float vectors within short blocks and in Double across blocks (accurate for rows of
// millions of elements at the cost of one Double add per block), and the one rule for how many
// threads a loop of a given size gets.
extension Elementwise {
    typealias Vector = SIMD8<Float>
    static let lanes = 8
    /// Elements summed in Float vectors before the partial sum is added in Double.
    static let reductionBlock = 512
    /// Elements (or element-sized work units) per thread below which a loop stays on one thread:
    /// a dispatch costs a few microseconds, about what 32 K streamed elements take.
    static let minChunk = 1 << 15

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector {
        UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector.self)
    }

    /// max(v, 0) per lane. (The standard library's generic `pointwiseMax` is not specialised
    /// into vector code and runs ~30 times slower than this blend.)
    @inline(__always)
    static func relu(_ v: Vector) -> Vector {
        v.replacing(with: 0, where: v .< Vector())
    }

    /// Threads for `count` units of work of `unitCost` elements each.
    @inline(__always)
    static func parts(_ count: Int, unitCost: Int = 1) -> Int {
        max(1, min(Parallel.threadCount, count, count * max(unitCost, 1) / minChunk))
    }

    /// Runs `body` on near-equal contiguous sub-ranges of `0..<count`, one per thread, where each
    /// unit of work streams about `unitCost` elements.
    @inline(__always)
    static func forRanges(_ count: Int, unitCost: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let n = parts(count, unitCost: unitCost)
        if n == 1 { body(0..<count); return }
        Parallel.forEach(n) { part in body(Parallel.chunk(part, of: n, count: count)) }
    }

    /// Σ p[0..<n], in Double across blocks: the C kernel of the active `KernelLevel`, or the
    /// Swift reference below.
    @inline(__always)
    static func sumDouble(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        if let table = KernelLevel.table { return table.pointee.sum(p, n) }
        return sumDoubleReference(p, n)
    }

    /// sums[r] += Σ x[r, 0..<columns] for each of `rows` contiguous rows (`sumDouble` per row): a
    /// bias's gradient from its output's gradient.
    static func accumulateRowSums(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { sums[r] += Float(sumDouble(x + r * columns, columns)) }
    }

    /// Σ p[0..<n], in Double across blocks (the Swift reference).
    static func sumDoubleReference(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        var total = 0.0
        var start = 0
        while start < n {
            let end = min(start + reductionBlock, n)
            // Four independent chains hide the add latency.
            var a = Vector(), b = Vector(), c = Vector(), d = Vector()
            var i = start
            while i + 4 * lanes <= end {
                a += load(p, i)
                b += load(p, i + lanes)
                c += load(p, i + 2 * lanes)
                d += load(p, i + 3 * lanes)
                i += 4 * lanes
            }
            while i + lanes <= end { a += load(p, i); i += lanes }
            var s = ((a + b) + (c + d)).sum()
            while i < end { s += p[i]; i += 1 }
            total += Double(s)
            start = end
        }
        return total
    }

    /// Σ (p[i] − center)² over `0..<n`, in Double across blocks: the C kernel of the active
    /// `KernelLevel`, or the Swift reference below.
    @inline(__always)
    static func sumSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, center: Float) -> Double {
        if let table = KernelLevel.table { return table.pointee.sum_squared_deviations(p, n, center) }
        return sumSquaredDeviationsReference(p, n, center: center)
    }

    /// Σ (p[i] − center)² over `0..<n`, in Double across blocks (the Swift reference).
    static func sumSquaredDeviationsReference(_ p: UnsafePointer<Float>, _ n: Int, center: Float) -> Double {
        let c = Vector(repeating: center)
        var total = 0.0
        var start = 0
        while start < n {
            let end = min(start + reductionBlock, n)
            var a = Vector(), b = Vector(), e = Vector(), f = Vector()
            var i = start
            while i + 4 * lanes <= end {
                let d0 = load(p, i) - c, d1 = load(p, i + lanes) - c
                let d2 = load(p, i + 2 * lanes) - c, d3 = load(p, i + 3 * lanes) - c
                a += d0 * d0
                b += d1 * d1
                e += d2 * d2
                f += d3 * d3
                i += 4 * lanes
            }
            while i + lanes <= end { let d0 = load(p, i) - c; a += d0 * d0; i += lanes }
            var s = ((a + b) + (e + f)).sum()
            while i < end { let d = p[i] - center; s += d * d; i += 1 }
            total += Double(s)
            start = end
        }
        return total
    }
}

import Runtime

/// Max, average and global average pooling over `(C, N, H, W)` activations, parallel over the
/// C·N image planes (each plane is contiguous, so a thread streams through its own memory).
/// Windows are clipped to the image; for max pooling the padding acts as −inf (a window always
/// holds a real element since padding ≤ kernel/2). The common DenseNet shapes get unrolled paths:
/// 2x2 stride 2 without padding (transition layers) and full 3x3 windows (the ImageNet stem's
/// max pool); max pooling is computed separably (rows, then columns).
public enum Pooling {
    /// (C, N, Ho, Wo) for x (C, N, H, W).
    public static func outputShape(input: [Int], _ p: PoolParameters) -> [Int] {
        precondition(input.count == 4, "Pooling.outputShape: input \(input) is not (C, N, H, W)")
        let (ho, wo) = p.outputSize(height: input[2], width: input[3])
        return [input[0], input[1], ho, wo]
    }

    /// Plane geometry after shape checks.
    struct Planes {
        var count: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
        var inSize: Int { height * width }
        var outSize: Int { outHeight * outWidth }
    }

    static func check(_ name: String, input x: Tensor, output y: Tensor, _ p: PoolParameters) -> Planes {
        precondition(x.rank == 4 && x.isContiguous, "Pooling.\(name): x \(x.shape) must be a contiguous (C, N, H, W) tensor")
        let expected = outputShape(input: x.shape, p)
        precondition(y.shape == expected && y.isContiguous,
                     "Pooling.\(name): y \(y.shape) vs x \(x.shape) with \(p): expected \(expected)")
        return Planes(count: x.shape[0] * x.shape[1], height: x.shape[2], width: x.shape[3],
                      outHeight: expected[2], outWidth: expected[3])
    }

    /// The clipped window [lo, hi) of output index o along an axis of length n.
    @inline(__always)
    static func window(_ o: Int, _ n: Int, _ p: PoolParameters) -> (lo: Int, hi: Int) {
        let start = o * p.stride - p.padding
        return (max(start, 0), min(start + p.kernel, n))
    }

    // MARK: Max

    /// y = max over each window (padding = −inf).
    // x (C, N, H, W) → y (C, N, Ho, Wo).
    public static func maxForward(_ x: Tensor, _ p: PoolParameters, into y: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        let g = check("maxForward", input: x, output: y, p)
        if let dryRun = DryRun.current {
            dryRun.scratch(maxForwardScratchBytes(input: x.shape, threads: dryRun.threads))
            return
        }
        let px = x.pointer, py = y.pointer
        let threads = Elementwise.parts(g.count, unitCost: g.inSize)
        // One row of column maxima per thread.
        let scratch = Tensor(shape: [threads, g.width], category: .scratch)
        let rows = scratch.pointer
        Parallel.forEach(threads) { part in
            for plane in Parallel.chunk(part, of: threads, count: g.count) {
                maxForwardPlane(px + plane * g.inSize, g, p, py + plane * g.outSize, columnMax: rows + part * g.width)
            }
        }
        withExtendedLifetime(scratch) {}
    }

    @inline(__always)
    static func larger(_ a: Float, _ b: Float) -> Float { b > a ? b : a }

    /// One plane, separably: for each output row, the vector maximum over the window's input
    /// rows (contiguous, eight lanes at a time), then the maxima over each window's columns.
    // x (H, W) → y (Ho, Wo); columnMax (W) scratch.
    static func maxForwardPlane(_ x: UnsafePointer<Float>, _ g: Planes, _ p: PoolParameters,
                                _ y: UnsafeMutablePointer<Float>, columnMax col: UnsafeMutablePointer<Float>) {
        let w = g.width
        if p.kernel == 2 && p.stride == 2 && p.padding == 0 {
            for oh in 0..<g.outHeight {
                let r0 = x + 2 * oh * w, r1 = r0 + w, out = y + oh * g.outWidth
                for ow in 0..<g.outWidth {
                    out[ow] = larger(larger(r0[2 * ow], r0[2 * ow + 1]), larger(r1[2 * ow], r1[2 * ow + 1]))
                }
            }
            return
        }
        for oh in 0..<g.outHeight {
            let (h0, h1) = window(oh, g.height, p)
            // Plain select loops: LLVM turns them into vector max instructions.
            let r0 = x + h0 * w
            switch h1 - h0 {
            case 3:
                let r1 = r0 + w, r2 = r1 + w
                for c in 0..<w { col[c] = larger(larger(r0[c], r1[c]), r2[c]) }
            case 2:
                let r1 = r0 + w
                for c in 0..<w { col[c] = larger(r0[c], r1[c]) }
            default:
                for c in 0..<w { col[c] = r0[c] }
                for h in (h0 + 1)..<h1 {
                    let r = x + h * w
                    for c in 0..<w { col[c] = larger(col[c], r[c]) }
                }
            }
            let out = y + oh * g.outWidth
            // Windows [first, last) lie inside the row; only the ones before and after are clipped.
            let first = min((p.padding + p.stride - 1) / p.stride, g.outWidth)
            let last = max(first, min(g.outWidth, (w - p.kernel + p.padding) / p.stride + 1))
            for ow in 0..<first { out[ow] = clippedMax(col, ow, w, p) }
            if p.kernel == 3 && p.stride == 2 {
                // Constant stride and width: vectorised with interleaved loads.
                let c = col - p.padding
                for ow in first..<last { out[ow] = larger(larger(c[2 * ow], c[2 * ow + 1]), c[2 * ow + 2]) }
            } else {
                for ow in first..<last {
                    let c = col + ow * p.stride - p.padding
                    var m = c[0]
                    for k in 1..<p.kernel { m = larger(m, c[k]) }
                    out[ow] = m
                }
            }
            for ow in last..<g.outWidth { out[ow] = clippedMax(col, ow, w, p) }
        }
    }

    @inline(__always)
    static func clippedMax(_ col: UnsafePointer<Float>, _ ow: Int, _ width: Int, _ p: PoolParameters) -> Float {
        let (w0, w1) = window(ow, width, p)
        var m = col[w0]
        for c in (w0 + 1)..<w1 { m = larger(m, col[c]) }
        return m
    }

    /// The largest element of a window and its offset in the plane; the first one in row-major
    /// window order on ties (PyTorch's rule, which the backward needs to route the gradient).
    @inline(__always)
    static func windowMax(_ x: UnsafePointer<Float>, _ width: Int, _ h0: Int, _ h1: Int, _ w0: Int, _ w1: Int)
        -> (value: Float, index: Int) {
        var best = -Float.infinity, at = h0 * width + w0
        for h in h0..<h1 {
            let row = h * width
            for w in w0..<w1 where x[row + w] > best {
                best = x[row + w]
                at = row + w
            }
        }
        return (best, at)
    }

    /// The offset of the first largest element of a full k×k window at `base` (k = 2 or 3),
    /// unrolled: the same row-major scan as `windowMax`, with selects instead of loop control.
    @inline(__always)
    static func fullWindowArgmax(_ x: UnsafePointer<Float>, _ width: Int, base: Int, kernel: Int) -> Int {
        var best = x[base], at = base
        @inline(__always) func visit(_ o: Int) {
            let v = x[o]
            at = v > best ? o : at
            best = v > best ? v : best
        }
        if kernel == 2 {
            visit(base + 1); visit(base + width); visit(base + width + 1)
        } else {
            visit(base + 1); visit(base + 2)
            visit(base + width); visit(base + width + 1); visit(base + width + 2)
            visit(base + 2 * width); visit(base + 2 * width + 1); visit(base + 2 * width + 2)
        }
        return at
    }

    /// dx[argmax of each window] += dy, the argmax recomputed from x (ties → first in window).
    // dy (C, N, Ho, Wo), x and dx (C, N, H, W).
    public static func maxBackward(_ dy: Tensor, x: Tensor, _ p: PoolParameters, dx: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        let g = check("maxBackward", input: x, output: dy, p)
        precondition(dx.shape == x.shape && dx.isContiguous, "Pooling.maxBackward: dx \(dx.shape) vs x \(x.shape)")
        if DryRun.isActive { return }
        let px = x.pointer, pdy = dy.pointer, pdx = dx.pointer
        let unrolled = p.kernel == 2 || p.kernel == 3
        // Output columns whose windows lie inside the row (as in maxForwardPlane).
        let first = min((p.padding + p.stride - 1) / p.stride, g.outWidth)
        let last = max(first, min(g.outWidth, (g.width - p.kernel + p.padding) / p.stride + 1))
        Elementwise.forRanges(g.count, unitCost: 2 * g.inSize) { planes in
            for plane in planes {
                let xs = px + plane * g.inSize, dxs = pdx + plane * g.inSize, dys = pdy + plane * g.outSize
                for oh in 0..<g.outHeight {
                    let (h0, h1) = window(oh, g.height, p)
                    let d = dys + oh * g.outWidth
                    let interiorRows = unrolled && h1 - h0 == p.kernel
                    for ow in 0..<g.outWidth {
                        let at: Int
                        if interiorRows && ow >= first && ow < last {
                            at = fullWindowArgmax(xs, g.width, base: h0 * g.width + ow * p.stride - p.padding, kernel: p.kernel)
                        } else {
                            let (w0, w1) = window(ow, g.width, p)
                            at = windowMax(xs, g.width, h0, h1, w0, w1).index
                        }
                        dxs[at] += d[ow]
                    }
                }
            }
        }
    }

    // MARK: Average

    /// The divisor of a window: its size within the padded image (countIncludePad, PyTorch's
    /// default) or its clipped size.
    @inline(__always)
    static func divisor(_ oh: Int, _ ow: Int, _ g: Planes, _ p: PoolParameters) -> Float {
        if p.countIncludePad {
            let hs = oh * p.stride - p.padding, ws = ow * p.stride - p.padding
            let he = min(hs + p.kernel, g.height + p.padding), we = min(ws + p.kernel, g.width + p.padding)
            return Float((he - hs) * (we - ws))
        }
        let (h0, h1) = window(oh, g.height, p), (w0, w1) = window(ow, g.width, p)
        return Float((h1 - h0) * (w1 - w0))
    }

    /// y = mean over each window.
    // x (C, N, H, W) → y (C, N, Ho, Wo).
    public static func avgForward(_ x: Tensor, _ p: PoolParameters, into y: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        let g = check("avgForward", input: x, output: y, p)
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer
        let w = g.width
        Elementwise.forRanges(g.count, unitCost: g.inSize) { planes in
            for plane in planes {
                let xs = px + plane * g.inSize, ys = py + plane * g.outSize
                if p.kernel == 2 && p.stride == 2 && p.padding == 0 {
                    for oh in 0..<g.outHeight {
                        let r0 = xs + 2 * oh * w, r1 = r0 + w, out = ys + oh * g.outWidth
                        for ow in 0..<g.outWidth {
                            out[ow] = ((r0[2 * ow] + r0[2 * ow + 1]) + (r1[2 * ow] + r1[2 * ow + 1])) * 0.25
                        }
                    }
                    continue
                }
                for oh in 0..<g.outHeight {
                    let (h0, h1) = window(oh, g.height, p)
                    for ow in 0..<g.outWidth {
                        let (w0, w1) = window(ow, w, p)
                        var sum: Float = 0
                        for h in h0..<h1 { for c in w0..<w1 { sum += xs[h * w + c] } }
                        ys[oh * g.outWidth + ow] = sum / divisor(oh, ow, g, p)
                    }
                }
            }
        }
    }

    /// dx[window] += dy / divisor for every window.
    // dy (C, N, Ho, Wo) → dx (C, N, H, W).
    public static func avgBackward(_ dy: Tensor, _ p: PoolParameters, dx: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        let g = check("avgBackward", input: dx, output: dy, p)
        if DryRun.isActive { return }
        let pdy = dy.pointer, pdx = dx.pointer
        let w = g.width
        Elementwise.forRanges(g.count, unitCost: 2 * g.inSize) { planes in
            for plane in planes {
                let dxs = pdx + plane * g.inSize, dys = pdy + plane * g.outSize
                if p.kernel == 2 && p.stride == 2 && p.padding == 0 {
                    for oh in 0..<g.outHeight {
                        let r0 = dxs + 2 * oh * w, r1 = r0 + w, d = dys + oh * g.outWidth
                        for ow in 0..<g.outWidth {
                            let v = d[ow] * 0.25
                            r0[2 * ow] += v; r0[2 * ow + 1] += v
                            r1[2 * ow] += v; r1[2 * ow + 1] += v
                        }
                    }
                    continue
                }
                for oh in 0..<g.outHeight {
                    let (h0, h1) = window(oh, g.height, p)
                    for ow in 0..<g.outWidth {
                        let (w0, w1) = window(ow, w, p)
                        let v = dys[oh * g.outWidth + ow] / divisor(oh, ow, g, p)
                        for h in h0..<h1 { for c in w0..<w1 { dxs[h * w + c] += v } }
                    }
                }
            }
        }
    }

    // MARK: Global average

    /// y[c, n] = mean of plane x[c, n, :, :].
    // x (C, N, H, W) → y (C, N).
    public static func globalAverageForward(_ x: Tensor, into y: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        precondition(x.rank == 4 && x.isContiguous, "Pooling.globalAverageForward: x \(x.shape) must be a contiguous (C, N, H, W) tensor")
        precondition(y.shape == [x.shape[0], x.shape[1]] && y.isContiguous,
                     "Pooling.globalAverageForward: y \(y.shape) vs x \(x.shape): expected [\(x.shape[0]), \(x.shape[1])]")
        let size = x.shape[2] * x.shape[3]
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer
        Elementwise.forRanges(y.count, unitCost: size) { planes in
            for plane in planes {
                py[plane] = Float(Elementwise.sumDouble(px + plane * size, size) / Double(size))
            }
        }
    }

    /// dx[c, n, :, :] += dy[c, n] / (H·W).
    // dy (C, N) → dx (C, N, H, W).
    public static func globalAverageBackward(_ dy: Tensor, dx: Tensor) {
        let span = Profile.begin(.pooling); defer { Profile.end(span) }
        precondition(dx.rank == 4 && dx.isContiguous, "Pooling.globalAverageBackward: dx \(dx.shape) must be a contiguous (C, N, H, W) tensor")
        precondition(dy.shape == [dx.shape[0], dx.shape[1]] && dy.isContiguous,
                     "Pooling.globalAverageBackward: dy \(dy.shape) vs dx \(dx.shape): expected [\(dx.shape[0]), \(dx.shape[1])]")
        let size = dx.shape[2] * dx.shape[3]
        if DryRun.isActive { return }
        let pdy = dy.pointer, pdx = dx.pointer
        Elementwise.forRanges(dy.count, unitCost: 2 * size) { planes in
            for plane in planes {
                let v = Elementwise.Vector(repeating: pdy[plane] / Float(size))
                let row = pdx + plane * size
                var i = 0
                while i + Elementwise.lanes <= size { Elementwise.store(Elementwise.load(row, i) + v, row, i); i += Elementwise.lanes }
                while i < size { row[i] += v[0]; i += 1 }
            }
        }
    }
}

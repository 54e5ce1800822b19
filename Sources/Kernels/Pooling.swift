import Runtime

/// Max, average and global average pooling over `(C, N, H, W)` activations, parallel over the
/// C·N image planes (each plane is contiguous, so a thread streams through its own memory).
/// Windows are clipped to the image; for max pooling the padding acts as −inf (a window always
/// holds a real element since padding ≤ kernel/2). The common DenseNet shapes get unrolled paths:
/// 2x2 stride 2 without padding (transition layers), 3x3 stride 2 (the ImageNet stem) in the
/// interior of the image.
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
        let g = check("maxForward", input: x, output: y, p)
        let px = x.pointer, py = y.pointer
        Elementwise.forRanges(g.count, unitCost: g.inSize) { planes in
            for plane in planes {
                maxForwardPlane(px + plane * g.inSize, g, p, py + plane * g.outSize)
            }
        }
    }

    static func maxForwardPlane(_ x: UnsafePointer<Float>, _ g: Planes, _ p: PoolParameters,
                                _ y: UnsafeMutablePointer<Float>) {
        let w = g.width
        if p.kernel == 2 && p.stride == 2 && p.padding == 0 {
            for oh in 0..<g.outHeight {
                let r0 = x + 2 * oh * w, r1 = r0 + w, out = y + oh * g.outWidth
                for ow in 0..<g.outWidth {
                    out[ow] = max(max(r0[2 * ow], r0[2 * ow + 1]), max(r1[2 * ow], r1[2 * ow + 1]))
                }
            }
            return
        }
        for oh in 0..<g.outHeight {
            let (h0, h1) = window(oh, g.height, p)
            let out = y + oh * g.outWidth
            if p.kernel == 3 && h1 - h0 == 3 {
                // Interior rows of a 3x3 window: three rows, columns clipped only at the ends.
                let r0 = x + h0 * w, r1 = r0 + w, r2 = r1 + w
                for ow in 0..<g.outWidth {
                    let (w0, w1) = window(ow, w, p)
                    if w1 - w0 == 3 {
                        let a = max(max(r0[w0], r0[w0 + 1]), r0[w0 + 2])
                        let b = max(max(r1[w0], r1[w0 + 1]), r1[w0 + 2])
                        let c = max(max(r2[w0], r2[w0 + 1]), r2[w0 + 2])
                        out[ow] = max(max(a, b), c)
                    } else {
                        out[ow] = windowMax(x, w, h0, h1, w0, w1).value
                    }
                }
                continue
            }
            for ow in 0..<g.outWidth {
                let (w0, w1) = window(ow, w, p)
                out[ow] = windowMax(x, w, h0, h1, w0, w1).value
            }
        }
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

    /// dx[argmax of each window] += dy, the argmax recomputed from x (ties → first in window).
    // dy (C, N, Ho, Wo), x and dx (C, N, H, W).
    public static func maxBackward(_ dy: Tensor, x: Tensor, _ p: PoolParameters, dx: Tensor) {
        let g = check("maxBackward", input: x, output: dy, p)
        precondition(dx.shape == x.shape && dx.isContiguous, "Pooling.maxBackward: dx \(dx.shape) vs x \(x.shape)")
        let px = x.pointer, pdy = dy.pointer, pdx = dx.pointer
        Elementwise.forRanges(g.count, unitCost: 2 * g.inSize) { planes in
            for plane in planes {
                let xs = px + plane * g.inSize, dxs = pdx + plane * g.inSize, dys = pdy + plane * g.outSize
                for oh in 0..<g.outHeight {
                    let (h0, h1) = window(oh, g.height, p)
                    for ow in 0..<g.outWidth {
                        let (w0, w1) = window(ow, g.width, p)
                        dxs[windowMax(xs, g.width, h0, h1, w0, w1).index] += dys[oh * g.outWidth + ow]
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
        let g = check("avgForward", input: x, output: y, p)
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
        let g = check("avgBackward", input: dx, output: dy, p)
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
        precondition(x.rank == 4 && x.isContiguous, "Pooling.globalAverageForward: x \(x.shape) must be a contiguous (C, N, H, W) tensor")
        precondition(y.shape == [x.shape[0], x.shape[1]] && y.isContiguous,
                     "Pooling.globalAverageForward: y \(y.shape) vs x \(x.shape): expected [\(x.shape[0]), \(x.shape[1])]")
        let size = x.shape[2] * x.shape[3]
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
        precondition(dx.rank == 4 && dx.isContiguous, "Pooling.globalAverageBackward: dx \(dx.shape) must be a contiguous (C, N, H, W) tensor")
        precondition(dy.shape == [dx.shape[0], dx.shape[1]] && dy.isContiguous,
                     "Pooling.globalAverageBackward: dy \(dy.shape) vs dx \(dx.shape): expected [\(dx.shape[0]), \(dx.shape[1])]")
        let size = dx.shape[2] * dx.shape[3]
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

import Runtime

/// Stride-1 convolutions whose output rows are as wide as their input rows (3x3 pad 1, the
/// DenseNet case) without im2col or col2im.
///
/// There, im2col row (ci, ki, kj) over an image is the input plane shifted by
/// s = (ki − ph)·W + (kj − pw), with the positions whose tap falls into the left/right padding
/// zeroed. So each pass is a sum of one product per kernel tap, read
/// straight from x (a strided matrix: rows ci, row stride N·H·W) and written straight into y or
/// dx (beta 1):
///   y[:, q]       += W_tap · x[:, q + s]             (padding positions of kj masked in a sum z)
///   dx[:, q + s]  += W_tapᵀ · dy_kj[:, q]            (dy_kj: dy with kj's padding positions zeroed)
///   dW_tap        += dy_kj[:, q] · x[:, q + s]ᵀ
/// over each tap's band of positions q (those whose shifted source lies in the input plane).
/// No cols matrix is written, packed by OpenBLAS again, or scattered back: on 3x3 48→12 at
/// batch 64 this took the forward from 6.5 to 4.2 ms and the backward from 16 to 10 ms.
extension Conv2d {
    /// Whether a pass makes the tap-major weight copy: the per-tap path's products by the
    /// weights (forward, input gradient) need it; its weight gradient reads only x and dy.
    static func makesTapMajorWeights(_ g: ConvGeometry, multipliesByWeights: Bool) -> Bool {
        g.hasUnitStrideRows && multipliesByWeights
    }

    /// Shape of the tap-major weight copy: (kh·kw, Cout, Cin).
    static func tapMajorShape(_ g: ConvGeometry) -> [Int] { [g.kernelArea, g.cout, g.cin] }

    /// Weights per tap, (kh·kw, Cout, Cin), so that each tap's Cout × Cin block is a plain matrix.
    /// Split by output channels: a strided copy made on every 3x3 forward and backward, it was
    /// the largest serial part of those at 16 threads (~0.1 ms per call at 128→32, `perf` on the
    /// model's thread).
    static func tapMajorWeights(_ weight: UnsafePointer<Float>, _ g: ConvGeometry) -> Tensor {
        let taps = Tensor(shape: tapMajorShape(g), category: .scratch)
        let t = taps.pointer, area = g.kernelArea
        // Writes run along ci: with the tap innermost, the nine stores of a weight were Cout·Cin
        // floats apart (16 KiB at 128→32, the same cache sets), 10 % of DenseNet-121's 7x7
        // backward (`perf`); the reads stride by kh·kw inside one output channel's weights.
        Parallel.forRanges(g.cout, minChunk: max(1, (1 << 13) / max(g.cin * area, 1))) { cos in
            for co in cos {
                let source = weight + co * g.cin * area
                for tap in 0..<area {
                    let target = t + (tap * g.cout + co) * g.cin
                    for ci in 0..<g.cin { target[ci] = source[ci * area + tap] }
                }
            }
        }
        return taps
    }

    /// Rows of the per-tap backward's workspace (floats per tile column): one Cout-row masked
    /// copy of dy per kernel column.
    static func maskedRows(_ g: ConvGeometry) -> Int { g.kw * g.cout }

    /// Per-tap backward over one tile of output columns (`hasUnitStrideRows` only):
    ///   tapGrad[tap][:, channels] += dy_kj[:, q] · x[channels, q + s]ᵀ      (dW, tap-major)
    ///   dx[channels, q + s]     += W_tap[:, channels]ᵀ · dy_kj[:, q]         (dx)
    /// over each tap's band q, where dy_kj is dy with the padding positions of kernel column kj
    /// zeroed (so the neighbouring-row values the shift reads there contribute nothing).
    /// `masked` holds maskedRows(g) × columns.count floats.
    /// // dy (Cout, N, Ho, Wo), x and dx (Cin, N, H, W), tapGrad and tapWeights (kh·kw, Cout, Cin)
    static func shiftedBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, tapWeights: UnsafePointer<Float>?,
                                _ g: ConvGeometry, channels: Range<Int>, columns: Range<Int>,
                                masked: UnsafeMutablePointer<Float>, tapGrad: UnsafeMutablePointer<Float>?,
                                dx: UnsafeMutablePointer<Float>?) {
        assert(g.hasUnitStrideRows)
        let width = columns.count, total = g.columns
        // dy_kj for every kernel column that reaches into the left or right padding.
        for kj in 0..<g.kw {
            let valid = validOutputColumns(g, kj: kj)
            if valid == 0..<g.w { continue }
            let copy = masked + kj * g.cout * width
            for co in 0..<g.cout {
                let row = copy + co * width
                row.update(from: dy + co * total + columns.lowerBound, count: width)
                forEachImagePiece(g, columns) { _, qa, qb, at in
                    zeroPaddingColumns(row + at - qa, g, valid: valid, qa: qa, qb: qb)
                }
            }
        }
        let plane = g.h * g.w, c0 = channels.lowerBound
        forEachImagePiece(g, columns) { n, qa, qb, at in
            for ki in 0..<g.kh {
                for kj in 0..<g.kw {
                    guard let band = unitStrideBand(g, ki: ki, kj: kj) else { continue }
                    let start = max(qa, band.copy.lowerBound), end = min(qb, band.copy.upperBound)
                    if start >= end { continue }
                    let tileColumn = at + (start - qa)
                    let unmasked = band.valid == 0..<g.w
                    let g_ = unmasked ? dy + columns.lowerBound + tileColumn : UnsafePointer(masked + kj * g.cout * width + tileColumn)
                    let ldg = unmasked ? total : width
                    let tap = ki * g.kw + kj
                    let shiftedPlane = n * plane + start + band.shift + c0 * g.inputColumns
                    if let tapGrad {
                        Gemm.sgemm(transB: true, m: g.cout, n: channels.count, k: end - start,
                                   a: g_, lda: ldg, b: x + shiftedPlane, ldb: g.inputColumns, beta: 1,
                                   c: tapGrad + tap * g.cout * g.cin + c0, ldc: g.cin)
                    }
                    if let dx, let tapWeights {
                        Gemm.sgemm(transA: true, m: channels.count, n: end - start, k: g.cout,
                                   a: tapWeights + tap * g.cout * g.cin + c0, lda: g.cin,
                                   b: g_, ldb: ldg, beta: 1, c: dx + shiftedPlane, ldc: g.inputColumns)
                    }
                }
            }
        }
    }

    /// dW[co, ci, tap] += Σ over accumulators of tapGrad[tap][co][ci].
    static func addTapMajor(_ tapGrads: UnsafePointer<Float>, count: Int, _ g: ConvGeometry,
                            into dWeight: UnsafeMutablePointer<Float>) {
        let area = g.kernelArea, size = area * g.cout * g.cin
        // Each thread owns output channels (rows of dWeight) and adds the partials in order, all
        // in one pass over its rows (one pass per partial read and wrote dWeight each time; with
        // ci outermost, so that dWeight's stores run along its rows, the 7x7 backward was slower).
        Parallel.forRanges(g.cout, minChunk: max(1, Parallel.memoryMinChunk / max(count * area * g.cin, 1))) { cos in
            for co in cos {
                let target = dWeight + co * g.cin * area
                for tap in 0..<area {
                    let source = tapGrads + (tap * g.cout + co) * g.cin
                    for ci in 0..<g.cin {
                        var sum = target[ci * area + tap]
                        for a in 0..<count { sum += source[a * size + ci] }
                        target[ci * area + tap] = sum
                    }
                }
            }
        }
    }
}

extension Conv2d {
    /// y[:, columns] = Σ_taps W_tap · x[:, q + s] by per-tap products straight from x, with no
    /// im2col (`hasUnitStrideRows` only). Taps whose kernel column reaches into the left/right
    /// padding read the neighbouring row's ends there, so each such kernel column kj is summed
    /// into `z` (Cout × columns.count), its padding positions zeroed, then added to y.
    /// // x (Cin, N, H, W) → y (Cout, N, Ho, Wo)
    static func shiftedForward(_ x: UnsafePointer<Float>, tapWeights: UnsafePointer<Float>, _ g: ConvGeometry,
                               columns: Range<Int>, z: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        assert(g.hasUnitStrideRows)
        let width = columns.count, total = g.columns, plane = g.h * g.w
        for co in 0..<g.cout { (y + co * total + columns.lowerBound).update(repeating: 0, count: width) }
        for kj in 0..<g.kw {
            let valid = validOutputColumns(g, kj: kj)
            let direct = valid == 0..<g.w
            if !direct { z.update(repeating: 0, count: g.cout * width) }
            forEachImagePiece(g, columns) { n, qa, qb, at in
                for ki in 0..<g.kh {
                    guard let band = unitStrideBand(g, ki: ki, kj: kj) else { continue }
                    let start = max(qa, band.copy.lowerBound), end = min(qb, band.copy.upperBound)
                    if start >= end { continue }
                    let tileColumn = at + (start - qa)
                    Gemm.sgemm(m: g.cout, n: end - start, k: g.cin,
                               a: tapWeights + (ki * g.kw + kj) * g.cout * g.cin, lda: g.cin,
                               b: x + n * plane + start + band.shift, ldb: g.inputColumns, beta: 1,
                               c: direct ? y + columns.lowerBound + tileColumn : z + tileColumn,
                               ldc: direct ? total : width)
                }
            }
            if direct { continue }
            for co in 0..<g.cout {
                let row = z + co * width
                forEachImagePiece(g, columns) { _, qa, qb, at in
                    zeroPaddingColumns(row + at - qa, g, valid: valid, qa: qa, qb: qb)
                }
                let target = y + co * total + columns.lowerBound
                for j in 0..<width { target[j] += row[j] }
            }
        }
    }
}

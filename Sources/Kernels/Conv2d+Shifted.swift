import Runtime

/// Stride-1 convolutions whose output rows are as wide as their input rows (3x3 pad 1, the
/// DenseNet case) without im2col or col2im.
///
/// There, im2col row (ci, ki, kj) is the input shifted by s = (ki − ph)·W + (kj − pw), with the
/// positions whose tap falls into the padding zeroed. So each pass is a sum of one product per
/// kernel tap, read straight from x (a strided matrix: rows ci, row stride N·H·W) and written
/// straight into y or dx (beta 1):
///   y[:, q]       += W_tap · x[:, q + s]             (y saved and put back where q + s is padding)
///   dx[:, q + s]  += W_tapᵀ · dy_tap[:, q]           (dy_tap: dy zeroed where q + s is padding)
///   dW_tap        += dy_tap[:, q] · x[:, q + s]ᵀ
/// over each tap's band of positions q. When Ho = H (3x3 pad 1) input and output planes line up
/// and the band spans the whole tile, across images: the shift then reads the neighbouring row
/// at the first/last column and the neighbouring image at the first/last row, which the masks
/// cancel. No cols matrix is written, packed by OpenBLAS again, or scattered back: on 3x3 48→12
/// at batch 64 this took the forward from 6.5 to 4.2 ms and the backward from 16 to 10 ms
/// (products per image); whole-tile products of 16k columns run at 0.73–0.83 of square sgemm
/// against 0.56–0.60 for the per-image ones (n = 992, Scripts/gemm_shapes.py).
extension Conv2d {
    /// Whether a pass makes the tap-major weight copy: the per-tap path's products by the
    /// weights (forward, input gradient) need it; its weight gradient reads only x and dy.
    static func makesTapMajorWeights(_ g: ConvGeometry, multipliesByWeights: Bool) -> Bool {
        g.hasUnitStrideRows && multipliesByWeights
    }

    /// Shape of the tap-major weight copy: (kh·kw, Cout, Cin).
    static func tapMajorShape(_ g: ConvGeometry) -> [Int] { [g.kernelArea, g.cout, g.cin] }

    /// Weights per tap, (kh·kw, Cout, Cin), so that each tap's Cout × Cin block is a plain matrix.
    static func tapMajorWeights(_ weight: UnsafePointer<Float>, _ g: ConvGeometry) -> Tensor {
        let taps = Tensor(shape: tapMajorShape(g), category: .scratch)
        let t = taps.pointer, area = g.kernelArea
        for co in 0..<g.cout {
            for ci in 0..<g.cin {
                for tap in 0..<area { t[(tap * g.cout + co) * g.cin + ci] = weight[(co * g.cin + ci) * area + tap] }
            }
        }
        return taps
    }

    /// Rows of the per-tap backward's workspace (floats per tile column): one Cout-row copy of
    /// dy, re-masked for each tap.
    static func maskedRows(_ g: ConvGeometry) -> Int { g.cout }

    /// Per-tap backward over one tile of output columns (`hasUnitStrideRows` only):
    ///   tapGrad[tap][:, channels] += dy_tap[:, q] · x[channels, q + s]ᵀ      (dW, tap-major)
    ///   dx[channels, q + s]     += W_tap[:, channels]ᵀ · dy_tap[:, q]         (dx)
    /// over the tap's band of each segment (`forEachShiftedSegment`: the whole tile when Ho = H),
    /// where dy_tap is dy with every position whose source q + s is padding zeroed, so the
    /// neighbouring row's or image's values that the shift reads there contribute nothing.
    /// dy_tap lives in `masked` (maskedRows(g) × columns.count floats): a copy of the tile of dy
    /// whose masked runs are restored and re-zeroed from one tap to the next (a few percent of
    /// its columns), never copied whole again.
    /// // dy (Cout, N, Ho, Wo), x and dx (Cin, N, H, W), tapGrad and tapWeights (kh·kw, Cout, Cin)
    static func shiftedBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, tapWeights: UnsafePointer<Float>?,
                                _ g: ConvGeometry, channels: Range<Int>, columns: Range<Int>,
                                masked: UnsafeMutablePointer<Float>, tapGrad: UnsafeMutablePointer<Float>?,
                                dx: UnsafeMutablePointer<Float>?) {
        assert(g.hasUnitStrideRows)
        let width = columns.count, total = g.columns, c0 = channels.lowerBound
        let dyTile = dy + columns.lowerBound
        var copied = false
        var current: (ki: Int, kj: Int)? = nil     // the tap whose mask `masked` holds
        for ki in 0..<g.kh {
            for kj in 0..<g.kw {
                let trivial = !hasMaskedRun(g, ki: ki, kj: kj, columns)
                if !trivial {
                    if !copied {
                        for co in 0..<g.cout { (masked + co * width).update(from: dyTile + co * total, count: width) }
                        copied = true
                    }
                    if let (pi, pj) = current {
                        forEachMaskedRun(g, ki: pi, kj: pj, columns) { at, count in
                            for co in 0..<g.cout { (masked + co * width + at).update(from: dyTile + co * total + at, count: count) }
                        }
                    }
                    forEachMaskedRun(g, ki: ki, kj: kj, columns) { at, count in
                        for co in 0..<g.cout { (masked + co * width + at).update(repeating: 0, count: count) }
                    }
                    current = (ki, kj)
                }
                let tap = ki * g.kw + kj
                forEachShiftedSegment(g, columns) { xBase, yBase, rowsIn, rowsOut, qa, qb in
                    guard let band = shiftedBand(g, rowsIn: rowsIn, rowsOut: rowsOut, ki: ki, kj: kj) else { return }
                    let start = max(qa, band.lowerBound), end = min(qb, band.upperBound)
                    if start >= end { return }
                    let at = yBase + start - columns.lowerBound
                    let a = trivial ? dyTile + at : UnsafePointer(masked + at)
                    let lda = trivial ? total : width
                    let source = xBase + start + shift(g, ki: ki, kj: kj) + c0 * g.inputColumns
                    if let tapGrad {
                        Gemm.sgemm(transB: true, m: g.cout, n: channels.count, k: end - start,
                                   a: a, lda: lda, b: x + source, ldb: g.inputColumns, beta: 1,
                                   c: tapGrad + tap * g.cout * g.cin + c0, ldc: g.cin)
                    }
                    if let dx, let tapWeights {
                        Gemm.sgemm(transA: true, m: channels.count, n: end - start, k: g.cout,
                                   a: tapWeights + tap * g.cout * g.cin + c0, lda: g.cin,
                                   b: a, ldb: lda, beta: 1, c: dx + source, ldc: g.inputColumns)
                    }
                }
            }
        }
    }

    /// dW[co, ci, tap] += Σ over accumulators of tapGrad[tap][co][ci].
    static func addTapMajor(_ tapGrads: UnsafePointer<Float>, count: Int, _ g: ConvGeometry,
                            into dWeight: UnsafeMutablePointer<Float>) {
        let area = g.kernelArea, size = area * g.cout * g.cin
        for a in 0..<count {
            let acc = tapGrads + a * size
            for tap in 0..<area {
                for co in 0..<g.cout {
                    let src = acc + (tap * g.cout + co) * g.cin
                    for ci in 0..<g.cin { dWeight[(co * g.cin + ci) * area + tap] += src[ci] }
                }
            }
        }
    }
}

extension Conv2d {
    /// y[:, columns] = Σ_taps W_tap · x[:, q + s] by per-tap products straight from x, with no
    /// im2col (`hasUnitStrideRows` only), each over the tap's band of a segment
    /// (`forEachShiftedSegment`: the whole tile when Ho = H). A product also writes the
    /// positions whose source is padding (it reads the neighbouring row or image there), so
    /// before it those positions of y are saved into `saved` (Cout × columns.count floats,
    /// packed; they are a few percent of the tile) and afterwards put back: exact, and the
    /// products stay as long as the tile.
    /// // x (Cin, N, H, W) → y (Cout, N, Ho, Wo)
    static func shiftedForward(_ x: UnsafePointer<Float>, tapWeights: UnsafePointer<Float>, _ g: ConvGeometry,
                               columns: Range<Int>, saved: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) {
        assert(g.hasUnitStrideRows)
        let width = columns.count, total = g.columns
        let yTile = y + columns.lowerBound
        for co in 0..<g.cout { (yTile + co * total).update(repeating: 0, count: width) }
        for ki in 0..<g.kh {
            for kj in 0..<g.kw {
                // Save y where this tap must add nothing.
                var packed = 0
                forEachMaskedRun(g, ki: ki, kj: kj, columns) { at, count in
                    for co in 0..<g.cout { (saved + co * width + packed).update(from: yTile + co * total + at, count: count) }
                    packed += count
                }
                let weights = tapWeights + (ki * g.kw + kj) * g.cout * g.cin
                forEachShiftedSegment(g, columns) { xBase, yBase, rowsIn, rowsOut, qa, qb in
                    guard let band = shiftedBand(g, rowsIn: rowsIn, rowsOut: rowsOut, ki: ki, kj: kj) else { return }
                    let start = max(qa, band.lowerBound), end = min(qb, band.upperBound)
                    if start >= end { return }
                    Gemm.sgemm(m: g.cout, n: end - start, k: g.cin, a: weights, lda: g.cin,
                               b: x + xBase + start + shift(g, ki: ki, kj: kj), ldb: g.inputColumns, beta: 1,
                               c: y + yBase + start, ldc: total)
                }
                if packed == 0 { continue }
                packed = 0
                forEachMaskedRun(g, ki: ki, kj: kj, columns) { at, count in
                    for co in 0..<g.cout { (yTile + co * total + at).update(from: saved + co * width + packed, count: count) }
                    packed += count
                }
            }
        }
    }
}

// MARK: Segments, bands and masks

extension Conv2d {
    /// The shift of tap (ki, kj): output position q reads input position q + s.
    @inline(__always)
    static func shift(_ g: ConvGeometry, ki: Int, kj: Int) -> Int { (ki - g.ph) * g.w + (kj - g.pw) }

    /// Calls `body(xBase, yBase, rowsIn, rowsOut, qa, qb)` for each segment of the tile `columns`:
    /// a run of whole images, from x element xBase (rowsIn rows of W) and y element yBase (rowsOut
    /// rows of Wo = W), of which the tile covers segment positions qa..<qb. When Ho = H, input
    /// and output planes line up, so the images the tile touches form one segment and each tap
    /// is one product over the whole tile (the rows the shift carries into a neighbouring image
    /// are masked); otherwise each image is a segment.
    @inline(__always)
    static func forEachShiftedSegment(_ g: ConvGeometry, _ columns: Range<Int>,
                                      _ body: (_ xBase: Int, _ yBase: Int, _ rowsIn: Int, _ rowsOut: Int,
                                               _ qa: Int, _ qb: Int) -> Void) {
        let planeOut = g.ho * g.wo, planeIn = g.h * g.w
        if g.ho == g.h {
            let n0 = columns.lowerBound / planeOut, n1 = (columns.upperBound - 1) / planeOut + 1
            let base = n0 * planeOut
            body(base, base, (n1 - n0) * g.h, (n1 - n0) * g.ho, columns.lowerBound - base, columns.upperBound - base)
            return
        }
        var j = columns.lowerBound
        while j < columns.upperBound {
            let n = j / planeOut
            let qa = j - n * planeOut, qb = min(planeOut, columns.upperBound - n * planeOut)
            body(n * planeIn, n * planeOut, g.h, g.ho, qa, qb)
            j = n * planeOut + qb
        }
    }

    /// Segment positions of tap (ki, kj), in a segment of rowsIn input and rowsOut output rows,
    /// from the first to the last whose source lies inside the segment (its first and last row
    /// and column); nil when there are none. Positions in between whose source is padding are
    /// the tap's masked runs.
    @inline(__always)
    static func shiftedBand(_ g: ConvGeometry, rowsIn: Int, rowsOut: Int, ki: Int, kj: Int) -> Range<Int>? {
        let ohLo = max(0, g.ph - ki), ohHi = min(rowsOut, rowsIn + g.ph - ki)
        let valid = validOutputColumns(g, kj: kj)
        guard ohLo < ohHi, !valid.isEmpty else { return nil }
        return (ohLo * g.w + valid.lowerBound)..<((ohHi - 1) * g.w + valid.upperBound)
    }

    /// Calls `body(at, count)` for each run of tile columns at..<at+count (offsets from
    /// columns.lowerBound) whose output positions read padding at tap (ki, kj): whole output
    /// rows whose input row ki is outside the image, and in the other rows the output columns
    /// whose input column kj is. // (Cout, N, Ho, Wo)
    @inline(__always)
    static func forEachMaskedRun(_ g: ConvGeometry, ki: Int, kj: Int, _ columns: Range<Int>,
                                 _ body: (_ at: Int, _ count: Int) -> Void) {
        let valid = validOutputColumns(g, kj: kj)
        // Output rows oh whose input row oh − ph + ki lies in the image.
        let rowLo = max(0, g.ph - ki), rowHi = min(g.ho, g.h + g.ph - ki)
        if rowLo == 0 && rowHi == g.ho && valid == 0..<g.wo { return }
        forEachOutputRowPiece(g, columns) { _, oh, ow0, count, at in
            if oh < rowLo || oh >= rowHi { body(at, count); return }
            let lo = max(ow0, valid.lowerBound), hi = min(ow0 + count, valid.upperBound)
            if lo >= hi { body(at, count); return }
            if lo > ow0 { body(at, lo - ow0) }
            if hi < ow0 + count { body(at + hi - ow0, ow0 + count - hi) }
        }
    }

    /// Whether tap (ki, kj) has any masked run in the tile.
    @inline(__always)
    static func hasMaskedRun(_ g: ConvGeometry, ki: Int, kj: Int, _ columns: Range<Int>) -> Bool {
        var any = false
        forEachMaskedRun(g, ki: ki, kj: kj, columns) { _, _ in any = true }
        return any
    }
}

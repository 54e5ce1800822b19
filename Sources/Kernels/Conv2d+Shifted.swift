import Runtime

/// The input gradient of a stride-1 convolution whose output rows are as wide as its input
/// rows (3x3 pad 1, the DenseNet case), without col2im.
///
/// There, im2col row (ci, ki, kj) over an image is the input plane shifted by
/// s = (ki − ph)·W + (kj − pw), with the positions whose tap falls into the left/right padding
/// zeroed (see `im2colUnitStride`). So dx = col2im(Wᵀ·dy) is, per kernel tap,
///   dx[:, q + s] += W[:, :, ki, kj]ᵀ · dy_kj[:, q]
/// over the tap's band of positions q, where dy_kj is dy with the padding positions of column
/// offset kj zeroed. Each tap is one product written straight into dx (beta 1): no cols
/// matrix is materialised, zeroed or scattered, which halved the 3x3 48→12 input gradient.
extension Conv2d {
    /// Weights per tap, (kh·kw, Cout, Cin), so that each tap's Cout × Cin block is a plain matrix.
    static func tapMajorWeights(_ weight: UnsafePointer<Float>, _ g: ConvGeometry) -> Tensor {
        let taps = Tensor(shape: [g.kernelArea, g.cout, g.cin], category: .scratch)
        let t = taps.pointer, area = g.kernelArea
        for co in 0..<g.cout {
            for ci in 0..<g.cin {
                for tap in 0..<area { t[(tap * g.cout + co) * g.cin + ci] = weight[(co * g.cin + ci) * area + tap] }
            }
        }
        return taps
    }

    /// Floats of masked-dy workspace per tile column: one Cout-row copy per kernel column.
    static func maskedRows(_ g: ConvGeometry) -> Int { g.kw * g.cout }

    /// dx[channels] += col2im(Wᵀ · dy[:, columns]) by per-tap products (`hasUnitStrideRows` only).
    /// `masked` holds maskedRows(g) × columns.count floats. // dy (Cout, N, Ho, Wo) → dx (Cin, N, H, W)
    static func shiftedInputGradient(_ dy: UnsafePointer<Float>, tapWeights: UnsafePointer<Float>, _ g: ConvGeometry,
                                     channels: Range<Int>, columns: Range<Int>, masked: UnsafeMutablePointer<Float>,
                                     into dx: UnsafeMutablePointer<Float>) {
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
        let plane = g.h * g.w
        forEachImagePiece(g, columns) { n, qa, qb, at in
            for ki in 0..<g.kh {
                for kj in 0..<g.kw {
                    guard let band = unitStrideBand(g, ki: ki, kj: kj) else { continue }
                    let start = max(qa, band.copy.lowerBound), end = min(qb, band.copy.upperBound)
                    if start >= end { continue }
                    let tileColumn = at + (start - qa)
                    let unmasked = band.valid == 0..<g.w
                    let b = unmasked ? dy + columns.lowerBound + tileColumn : UnsafePointer(masked + kj * g.cout * width + tileColumn)
                    let tap = ki * g.kw + kj
                    Gemm.sgemm(transA: true, m: channels.count, n: end - start, k: g.cout,
                               a: tapWeights + tap * g.cout * g.cin + channels.lowerBound, lda: g.cin,
                               b: b, ldb: unmasked ? total : width, beta: 1,
                               c: dx + channels.lowerBound * g.inputColumns + n * plane + start + band.shift,
                               ldc: g.inputColumns)
                }
            }
        }
    }
}

import Foundation
import Runtime

/// The gather (im2col) and its adjoint, scatter-add (col2im), over a tile of output columns.
///
/// Column j of the im2col matrix is output position j = (n·Ho + oh)·Wo + ow; its row
/// r = (ci − c0)·kh·kw + ki·kw + kj holds x[ci, n, oh·sh − ph + ki, ow·sw − pw + kj], or 0 where that
/// falls in the padding. A tile is any column range (it may start and end inside an output row
/// or span several images), and a channel range `c0..<c1` selects a block of rows, so threads
/// can split the work by output columns or by input channels.
extension Conv2d {
    /// Calls `body(n, oh, ow0, count, at)` for each piece of an output row inside `columns`:
    /// output positions (n, oh, ow0 ..< ow0+count), which are tile columns at ..< at+count.
    @inline(__always)
    static func forEachOutputRowPiece(_ g: ConvGeometry, _ columns: Range<Int>,
                                      _ body: (_ n: Int, _ oh: Int, _ ow0: Int, _ count: Int, _ at: Int) -> Void) {
        var j = columns.lowerBound
        let plane = g.ho * g.wo
        var n = j / plane
        var oh = (j - n * plane) / g.wo
        var ow = j - n * plane - oh * g.wo
        while j < columns.upperBound {
            let count = min(g.wo - ow, columns.upperBound - j)
            body(n, oh, ow, count, j - columns.lowerBound)
            j += count
            ow = 0
            oh += 1
            if oh == g.ho { oh = 0; n += 1 }
        }
    }

    /// The output columns ow whose input column ow·sw − pw + kj lies inside 0..<W.
    @inline(__always)
    static func validOutputColumns(_ g: ConvGeometry, kj: Int) -> Range<Int> {
        let low = g.pw - kj <= 0 ? 0 : (g.pw - kj + g.sw - 1) / g.sw
        let last = g.w - 1 + g.pw - kj
        let high = last < 0 ? 0 : min(g.wo, last / g.sw + 1)
        return low < high ? low..<high : 0..<0
    }

    /// cols (rows of `channels`·kh·kw, row stride `columns.count`) = im2col of x over `columns`.
    /// // x (Cin, N, H, W)
    static func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, channels: Range<Int>, columns: Range<Int>,
                       into cols: UnsafeMutablePointer<Float>) {
        let ld = columns.count, plane = g.h * g.w, channelStride = g.inputColumns
        for ci in channels {
            for ki in 0..<g.kh {
                for kj in 0..<g.kw {
                    let row = cols + (((ci - channels.lowerBound) * g.kh + ki) * g.kw + kj) * ld
                    let valid = validOutputColumns(g, kj: kj)
                    forEachOutputRowPiece(g, columns) { n, oh, ow0, count, at in
                        let dst = row + at
                        let ih = oh * g.sh - g.ph + ki
                        let lo = max(ow0, valid.lowerBound), hi = min(ow0 + count, valid.upperBound)
                        if ih < 0 || ih >= g.h || lo >= hi {
                            dst.update(repeating: 0, count: count)
                            return
                        }
                        if lo > ow0 { dst.update(repeating: 0, count: lo - ow0) }
                        if hi < ow0 + count { (dst + (hi - ow0)).update(repeating: 0, count: ow0 + count - hi) }
                        let src = x + ci * channelStride + n * plane + ih * g.w + kj - g.pw
                        let out = dst - ow0
                        if g.sw == 1 {
                            (out + lo).update(from: src + lo, count: hi - lo)
                        } else if g.sw == 2 {
                            // A constant stride lets the compiler load whole vectors and keep every
                            // other lane (7x7 stride-2 stems: ~2 ms a step of DenseNet-121 b8 each way, measured).
                            for ow in lo..<hi { out[ow] = src[2 &* ow] }
                        } else {
                            let s = g.sw
                            for ow in lo..<hi { out[ow] = src[ow * s] }
                        }
                    }
                }
            }
        }
    }

    /// dx += col2im(cols): the adjoint of `im2col`, adding each tile entry back onto the input
    /// position it was gathered from. // dx (Cin, N, H, W)
    static func col2imAccumulate(_ cols: UnsafePointer<Float>, _ g: ConvGeometry, channels: Range<Int>,
                                 columns: Range<Int>, into dx: UnsafeMutablePointer<Float>) {
        let ld = columns.count, plane = g.h * g.w, channelStride = g.inputColumns
        for ci in channels {
            for ki in 0..<g.kh {
                for kj in 0..<g.kw {
                    let row = cols + (((ci - channels.lowerBound) * g.kh + ki) * g.kw + kj) * ld
                    let valid = validOutputColumns(g, kj: kj)
                    forEachOutputRowPiece(g, columns) { n, oh, ow0, count, at in
                        let ih = oh * g.sh - g.ph + ki
                        let lo = max(ow0, valid.lowerBound), hi = min(ow0 + count, valid.upperBound)
                        if ih < 0 || ih >= g.h || lo >= hi { return }
                        let dst = dx + ci * channelStride + n * plane + ih * g.w + kj - g.pw
                        let src = row + at - ow0
                        if g.sw == 1 {
                            for ow in lo..<hi { dst[ow] += src[ow] }
                        } else {
                            let s = g.sw
                            for ow in lo..<hi { dst[ow * s] += src[ow] }
                        }
                    }
                }
            }
        }
    }

    // MARK: Stride 1, output as wide as the input (helpers of Conv2d+Shifted.swift)

    /// For tap (ki, kj) with stride 1 and Wo = W: image positions `copy` whose shifted source
    /// stays inside the input plane (first to last valid position), the shift, and the valid
    /// output columns; nil when no position of this tap reads the input.
    @inline(__always)
    static func unitStrideBand(_ g: ConvGeometry, ki: Int, kj: Int) -> (copy: Range<Int>, shift: Int, valid: Range<Int>)? {
        let ohLo = max(0, g.ph - ki), ohHi = min(g.ho, g.h + g.ph - ki)
        let valid = validOutputColumns(g, kj: kj)
        guard ohLo < ohHi, !valid.isEmpty else { return nil }
        return ((ohLo * g.w + valid.lowerBound)..<((ohHi - 1) * g.w + valid.upperBound),
                (ki - g.ph) * g.w + (kj - g.pw), valid)
    }

    /// Zeroes, in image positions qa..<qb of one cols row (indexed by q), the output columns
    /// outside `valid`: a strided store per padding column (usually one, of stride W).
    @inline(__always)
    static func zeroPaddingColumns(_ row: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                                   valid: Range<Int>, qa: Int, qb: Int) {
        let lo = valid.lowerBound, hi = valid.upperBound, w = g.w
        @inline(__always) func zeroColumn(_ ow: Int) {
            var q = (qa - ow + w - 1) / w * w + ow     // first q >= qa in output column ow
            while q < qb { row[q] = 0; q += w }
        }
        for ow in 0..<lo { zeroColumn(ow) }
        for ow in hi..<w { zeroColumn(ow) }
    }

    /// Calls `body(n, qa, qb, at)` for each image n that the tile `columns` touches, with the
    /// image positions qa..<qb it covers, which are tile columns at..<at+(qb−qa).
    @inline(__always)
    static func forEachImagePiece(_ g: ConvGeometry, _ columns: Range<Int>,
                                  _ body: (_ n: Int, _ qa: Int, _ qb: Int, _ at: Int) -> Void) {
        let plane = g.ho * g.wo
        var j = columns.lowerBound
        while j < columns.upperBound {
            let n = j / plane
            let qa = j - n * plane, qb = min(plane, columns.upperBound - n * plane)
            body(n, qa, qb, j - columns.lowerBound)
            j = n * plane + qb
        }
    }
}

import Foundation
import Runtime

/// torchvision's classification presets (references/classification/presets.py) on decoded
/// images: for training `RandomResizedCrop(size)` and `RandomHorizontalFlip()`, for evaluation
/// `Resize(resize)` of the shorter side and `CenterCrop(size)`; then `ToTensor` (÷255) and the
/// loader's `Normalize`. Resampling is PIL's antialiased bilinear filter (a triangle stretched
/// by the downscaling factor, src/libImaging/Resample.c), computed in float without PIL's
/// rounding to 8 bits between the two passes.
public enum FolderTransform: Sendable, Equatable {
    /// Random area fraction in `scale`, aspect ratio log-uniform in `ratio`, then a flip with
    /// p = ½ when `flip`.
    case randomResizedCrop(scale: ClosedRange<Double>, ratio: ClosedRange<Double>, flip: Bool)
    /// The shorter side resized to `resize` (the longer in proportion, truncated), then the
    /// central output-sized crop (zeros where the crop is outside the resized image).
    case resizeCenterCrop(resize: Int)

    /// torchvision's defaults: scale 0.08–1, ratio 3/4–4/3, flip.
    public static let trainDefault = FolderTransform.randomResizedCrop(scale: 0.08...1, ratio: (3.0 / 4)...(4.0 / 3), flip: true)

    /// The evaluation resize for a crop: 256 for 224 as in the presets, in proportion otherwise.
    public static func evaluationResize(forCrop crop: Int) -> Int { max(crop, Int((Double(crop) * 256 / 224).rounded())) }

    /// torchvision's `RandomResizedCrop.get_params`: ten tries of a random box, else the whole
    /// image cut to the nearest allowed ratio, centred. Returns (top, left, height, width).
    public static func randomBox(height: Int, width: Int, scale: ClosedRange<Double>, ratio: ClosedRange<Double>,
                                 using rng: inout SeededGenerator) -> (top: Int, left: Int, height: Int, width: Int) {
        func uniform() -> Double { Double(rng.next() >> 11) * 0x1p-53 }
        let area = Double(height) * Double(width)
        let logLow = log(ratio.lowerBound), logHigh = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * (scale.lowerBound + uniform() * (scale.upperBound - scale.lowerBound))
            let aspect = exp(logLow + uniform() * (logHigh - logLow))
            let w = Int((target * aspect).squareRoot().rounded()), h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = Int(rng.next() % UInt64(height - h + 1)), left = Int(rng.next() % UInt64(width - w + 1))
                return (top, left, h, w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound { h = Int((Double(w) / ratio.lowerBound).rounded()) }
        else if inRatio > ratio.upperBound { w = Int((Double(h) * ratio.upperBound).rounded()) }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// torchvision's `Resize(size)` output for an int size: the shorter side becomes `size`.
    public static func resizedSize(height: Int, width: Int, shorter size: Int) -> (height: Int, width: Int) {
        height <= width ? (size, Int(Double(size) * Double(width) / Double(height)))
            : (Int(Double(size) * Double(height) / Double(width)), size)
    }

    /// `image` transformed to `output` as floats in [0, 1], channel c at `dst + c · planeStride`
    /// (rows of `output.width`). Draws from `rng` only for the random crop.
    public func apply(_ image: DecodedImage, output: ImageSize, using rng: inout SeededGenerator,
                      dst: UnsafeMutablePointer<Float>, planeStride: Int) {
        let h = image.height, w = image.width
        switch self {
        case .randomResizedCrop(let scale, let ratio, let flip):
            let box = FolderTransform.randomBox(height: h, width: w, scale: scale, ratio: ratio, using: &rng)
            let flipped = flip && (rng.next() >> 63) == 1
            let rows = Resampling(input: h, from: Double(box.top), to: Double(box.top + box.height), outputs: output.height)
            let columns = Resampling(input: w, from: Double(box.left), to: Double(box.left + box.width), outputs: output.width)
            Resampling.resample(image, rows: rows, columns: columns, flip: flipped, dst: dst, planeStride: planeStride)
        case .resizeCenterCrop(let resize):
            let size = FolderTransform.resizedSize(height: h, width: w, shorter: resize)
            // torchvision's center_crop: top = round((H - h) / 2), Python's round-half-even.
            let top = Int((Double(size.height - output.height) / 2).rounded(.toNearestOrEven))
            let left = Int((Double(size.width - output.width) / 2).rounded(.toNearestOrEven))
            let rows = Resampling(input: h, from: 0, to: Double(h), outputs: size.height, window: top, count: output.height)
            let columns = Resampling(input: w, from: 0, to: Double(w), outputs: size.width, window: left, count: output.width)
            Resampling.resample(image, rows: rows, columns: columns, flip: false, dst: dst, planeStride: planeStride)
        }
    }
}

/// One axis of PIL's antialiased bilinear resampling (`precompute_coeffs` in
/// src/libImaging/Resample.c) of the input span [from, to) onto `outputs` samples, of which
/// outputs `window ..< window + count` are kept; kept outputs outside `0..<outputs` are zero.
public struct Resampling: Sendable {
    /// Per kept output: first input index and normalised weights (empty: a zero output).
    public let first: [Int]
    public let weights: [[Float]]

    public init(input: Int, from: Double, to: Double, outputs: Int, window: Int = 0, count: Int? = nil) {
        precondition(input > 0 && outputs > 0 && to > from, "Resampling: input \(input), span \(from)..<\(to), outputs \(outputs)")
        let scale = (to - from) / Double(outputs)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle's support is 1
        var first = [Int](), weights = [[Float]]()
        for o in window..<(window + (count ?? outputs)) {
            guard o >= 0 && o < outputs else { first.append(0); weights.append([]); continue }
            let center = from + (Double(o) + 0.5) * scale
            let lo = max(Int((center - support + 0.5).rounded(.down)), 0)
            let hi = min(Int((center + support + 0.5).rounded(.down)), input)
            var w = [Double]()
            for x in lo..<max(hi, lo) { w.append(max(0, 1 - abs((Double(x) - center + 0.5) / filterScale))) }
            let total = w.reduce(0, +)
            first.append(lo)
            weights.append(total > 0 ? w.map { Float($0 / total) } : [])
        }
        self.first = first
        self.weights = weights
    }

    /// Separable resampling of an 8-bit interleaved image: columns first (every input row),
    /// then rows; output scaled to [0, 1], flipped left–right when `flip`.
    static func resample(_ image: DecodedImage, rows: Resampling, columns: Resampling, flip: Bool,
                         dst: UnsafeMutablePointer<Float>, planeStride: Int) {
        let c = image.channels, w = image.width, outH = rows.first.count, outW = columns.first.count
        // Only the input rows some output row reads (a random crop's, not the whole image's).
        let used = zip(rows.first, rows.weights).filter { !$0.1.isEmpty }
        let rowStart = used.map(\.0).min() ?? 0
        let rowEnd = used.map { $0.0 + $0.1.count }.max() ?? 0
        var horizontal = [Float](repeating: 0, count: image.height * outW * c)  // (H, outW, C)
        image.pixels.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { tmp in
                for x in 0..<outW {
                    let k = columns.weights[x], x0 = columns.first[x]
                    for y in rowStart..<max(rowEnd, rowStart) {
                        let row = src.baseAddress! + y * w * c
                        for ch in 0..<c {
                            var s: Float = 0
                            for (i, weight) in k.enumerated() { s += weight * Float(row[(x0 + i) * c + ch]) }
                            tmp[(y * outW + x) * c + ch] = s
                        }
                    }
                }
                for y in 0..<outH {
                    let k = rows.weights[y], y0 = rows.first[y]
                    for x in 0..<outW {
                        let ox = flip ? outW - 1 - x : x
                        for ch in 0..<c {
                            var s: Float = 0
                            for (i, weight) in k.enumerated() { s += weight * tmp[((y0 + i) * outW + x) * c + ch] }
                            dst[ch * planeStride + y * outW + ox] = s / 255
                        }
                    }
                }
            }
        }
    }

    /// The same straight from the two-dimensional sum, one output pixel at a time (reference
    /// for tests); `(C, outH, outW)`.
    public static func resampleReference(_ image: DecodedImage, rows: Resampling, columns: Resampling, flip: Bool) -> [Float] {
        let c = image.channels, outH = rows.first.count, outW = columns.first.count
        var out = [Float](repeating: 0, count: c * outH * outW)
        for ch in 0..<c {
            for y in 0..<outH {
                for x in 0..<outW {
                    var s = 0.0
                    for (i, wy) in rows.weights[y].enumerated() {
                        for (j, wx) in columns.weights[x].enumerated() {
                            let p = image.pixels[((rows.first[y] + i) * image.width + columns.first[x] + j) * c + ch]
                            s += Double(wy) * Double(wx) * Double(p)
                        }
                    }
                    out[(ch * outH + y) * outW + (flip ? outW - 1 - x : x)] = Float(s / 255)
                }
            }
        }
        return out
    }
}

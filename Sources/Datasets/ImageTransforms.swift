import Foundation
import Runtime

/// A height and width in pixels.
public struct ImageSize: Sendable, Equatable, Codable, CustomStringConvertible {
    public var height: Int
    public var width: Int
    public init(height: Int, width: Int) {
        precondition(height > 0 && width > 0, "ImageSize: \(height)x\(width) must be positive")
        self.height = height
        self.width = width
    }
    /// A square size.
    public init(_ side: Int) { self.init(height: side, width: side) }
    public var area: Int { height * width }
    public var description: String { "\(height)x\(width)" }
}

/// Per-channel normalisation `(x - mean[c]) / std[c]` of pixels scaled to [0, 1], like
/// torchvision's `Normalize` after `ToTensor`.
public struct Normalization: Sendable, Equatable, Codable {
    public var mean: [Float]
    public var std: [Float]
    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count && !mean.isEmpty,
                     "Normalization: \(mean.count) means and \(std.count) standard deviations")
        precondition(std.allSatisfy { $0 > 0 }, "Normalization: standard deviations \(std) must be positive")
        self.mean = mean
        self.std = std
    }
    /// The usual CIFAR-10 statistics (per-channel mean and std of the training set).
    public static let cifar10 = Normalization(mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616])
    /// Fashion-MNIST's training-set mean and std.
    public static let fashionMNIST = Normalization(mean: [0.2860], std: [0.3530])
}

/// Random training augmentation, drawn per example from a seeded generator.
public enum Augmentation: Sendable, Equatable, Codable {
    case none
    /// torchvision's `RandomCrop(size, padding: padding)` (zero padding) followed by
    /// `RandomHorizontalFlip()` when `flip`; the output keeps the input size.
    case randomCropFlip(padding: Int, flip: Bool)
    /// torchvision's `RandomResizedCrop(size, scale: (minScale, 1))` and, when `flip`,
    /// `RandomHorizontalFlip()`, drawn per image after decoding (`FolderTransform`); image
    /// folders only. Without augmentation an image folder is resized and centre-cropped.
    case randomResizedCrop(minScale: Double, flip: Bool)

    /// The standard CIFAR augmentation: pad 4, random 32×32 crop, horizontal flip with p = 0.5.
    public static let cifar = Augmentation.randomCropFlip(padding: 4, flip: true)
}

/// One example's draw of the augmentation: crop offsets in the padded image, and the flip.
public struct CropFlip: Sendable, Equatable {
    public var dy: Int
    public var dx: Int
    public var flip: Bool
    public var padding: Int
    public static let identity = CropFlip(dy: 0, dx: 0, flip: false, padding: 0)

    public init(dy: Int, dx: Int, flip: Bool, padding: Int) {
        self.dy = dy; self.dx = dx; self.flip = flip; self.padding = padding
    }

    /// Draws dy, then dx (uniform in 0...2·padding), then the flip (p = 0.5).
    public init(_ augmentation: Augmentation, using rng: inout SeededGenerator) {
        switch augmentation {
        case .none, .randomResizedCrop:
            self = .identity
        case .randomCropFlip(let padding, let flip):
            let span = UInt64(2 * padding + 1)
            dy = Int(rng.next() % span)
            dx = Int(rng.next() % span)
            self.flip = flip && (rng.next() >> 63) == 1
            self.padding = padding
        }
    }
}

/// The pixel kernels of `DataLoader`, each with a plain reference.
public enum ImageTransforms {
    // MARK: Bytes to floats, with crop and flip

    /// One image's bytes `(C, H, W)` to floats in [0, 1], cropped and flipped by `draw`: output
    /// pixel (y, x) of channel c is source (y + dy − p, x' + dx − p) with x' = W−1−x when
    /// flipped, else x; outside the source it is 0 (zero padding). Channel c goes to
    /// `dst + c · planeStride` (so it can write straight into a `(C, N, H, W)` batch).
    public static func toFloat(_ src: UnsafePointer<UInt8>, channels: Int, height: Int, width: Int,
                               draw: CropFlip, dst: UnsafeMutablePointer<Float>, planeStride: Int) {
        // Division, not multiplication by 1/255, to give torchvision's ToTensor bits exactly.
        let oy = draw.dy - draw.padding, ox = draw.dx - draw.padding
        for c in 0..<channels {
            let plane = src + c * height * width
            let out = dst + c * planeStride
            for y in 0..<height {
                let sy = y + oy
                let row = out + y * width
                if sy < 0 || sy >= height {
                    for x in 0..<width { row[x] = 0 }
                    continue
                }
                let srcRow = plane + sy * width
                if !draw.flip && ox == 0 {
                    for x in 0..<width { row[x] = Float(srcRow[x]) / 255 }
                    continue
                }
                for x in 0..<width {
                    let sx = (draw.flip ? width - 1 - x : x) + ox
                    row[x] = (sx >= 0 && sx < width) ? Float(srcRow[sx]) / 255 : 0
                }
            }
        }
    }

    /// The same by materialising the padded image, cropping it, then flipping (the order of
    /// the torchvision transforms); `(C, H, W)` in and out.
    public static func toFloatReference(_ src: [UInt8], channels: Int, height: Int, width: Int,
                                        draw: CropFlip) -> [Float] {
        let p = draw.padding, ph = height + 2 * p, pw = width + 2 * p
        var padded = [Float](repeating: 0, count: channels * ph * pw)
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width {
                    padded[(c * ph + y + p) * pw + x + p] = Float(src[(c * height + y) * width + x]) / 255
                }
            }
        }
        var cropped = [Float](repeating: 0, count: channels * height * width)
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width { cropped[(c * height + y) * width + x] = padded[(c * ph + y + draw.dy) * pw + x + draw.dx] }
            }
        }
        guard draw.flip else { return cropped }
        var flipped = cropped
        for c in 0..<channels {
            for y in 0..<height {
                for x in 0..<width { flipped[(c * height + y) * width + x] = cropped[(c * height + y) * width + width - 1 - x] }
            }
        }
        return flipped
    }

    // MARK: Bilinear resize

    /// Source index pairs and weights along one axis for bilinear resizing with
    /// align_corners = false (PyTorch's `F.interpolate(mode: "bilinear")`, torchvision's
    /// `Resize` on tensors without antialiasing): source = (dst + ½)·in/out − ½, clamped below
    /// at 0; the upper neighbour is clamped to the last pixel.
    public struct Axis: Sendable {
        public let lower: [Int]
        public let upper: [Int]
        public let upperWeight: [Float]

        public init(from input: Int, to output: Int) {
            precondition(input > 0 && output > 0, "ImageTransforms.Axis: sizes \(input) → \(output)")
            let scale = Float(input) / Float(output)
            var lo = [Int](), hi = [Int](), w = [Float]()
            for d in 0..<output {
                let s = max((Float(d) + 0.5) * scale - 0.5, 0)
                let i0 = min(Int(s), input - 1)
                lo.append(i0)
                hi.append(min(i0 + 1, input - 1))
                w.append(s - Float(i0))
            }
            lower = lo; upper = hi; upperWeight = w
        }
    }

    /// Bilinear resize of one plane `(inH, inW)` → `(rows.count, columns.count)`, with axis
    /// tables from `Axis`.
    public static func resizePlane(_ src: UnsafePointer<Float>, inWidth: Int, rows: Axis, columns: Axis,
                                   dst: UnsafeMutablePointer<Float>) {
        let outH = rows.lower.count, outW = columns.lower.count
        rows.lower.withUnsafeBufferPointer { r0 in
        rows.upper.withUnsafeBufferPointer { r1 in
        rows.upperWeight.withUnsafeBufferPointer { rw in
        columns.lower.withUnsafeBufferPointer { c0 in
        columns.upper.withUnsafeBufferPointer { c1 in
        columns.upperWeight.withUnsafeBufferPointer { cw in
            for y in 0..<outH {
                let a = src + r0[y] * inWidth, b = src + r1[y] * inWidth
                let wb = rw[y], wa = 1 - wb
                let out = dst + y * outW
                for x in 0..<outW {
                    let w1 = cw[x], w0 = 1 - w1
                    let top = w0 * a[c0[x]] + w1 * a[c1[x]]
                    let bottom = w0 * b[c0[x]] + w1 * b[c1[x]]
                    out[x] = wa * top + wb * bottom
                }
            }
        }}}}}}
    }

    /// The same, straight from the formula, one output pixel at a time; `(H, W)` in and out.
    public static func resizeReference(_ src: [Float], height: Int, width: Int, to size: ImageSize) -> [Float] {
        func source(_ d: Int, _ input: Int, _ output: Int) -> (Int, Int, Float) {
            let s = max((Double(d) + 0.5) * Double(input) / Double(output) - 0.5, 0)
            let i0 = min(Int(s.rounded(.down)), input - 1)
            return (i0, min(i0 + 1, input - 1), Float(s - Double(i0)))
        }
        var out = [Float](repeating: 0, count: size.area)
        for y in 0..<size.height {
            let (y0, y1, ly) = source(y, height, size.height)
            for x in 0..<size.width {
                let (x0, x1, lx) = source(x, width, size.width)
                let v00 = src[y0 * width + x0], v01 = src[y0 * width + x1]
                let v10 = src[y1 * width + x0], v11 = src[y1 * width + x1]
                out[y * size.width + x] = (1 - ly) * ((1 - lx) * v00 + lx * v01) + ly * ((1 - lx) * v10 + lx * v11)
            }
        }
        return out
    }

    // MARK: Normalisation

    /// `x = (x − mean) / std` over `count` floats.
    public static func normalize(_ x: UnsafeMutablePointer<Float>, count: Int, mean: Float, std: Float) {
        let inv = 1 / std
        for i in 0..<count { x[i] = (x[i] - mean) * inv }
    }
}

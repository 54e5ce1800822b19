import Foundation
import Runtime

/// A labelled image dataset in memory, as stored on disk: `count` images of `channels ×
/// height × width` unsigned bytes (image-major, each image channel-planar like CIFAR's records)
/// and one `Int32` label in `0..<classCount` per image.
///
/// The bytes are a Swift array, not a counted `Tensor`: they are the input data (47 MB for
/// Fashion-MNIST's training set, a quarter of its float size), not the model's memory. Batches
/// made from them by `DataLoader` are counted tensors.
public struct ImageDataset: Sendable {
    /// `count × channels × height × width` pixels, 0–255.
    public let pixels: [UInt8]
    public let labels: [Int32]
    public let channels: Int
    public let height: Int
    public let width: Int
    public let classCount: Int
    /// Class names, when known (`classNames[label]`).
    public let classNames: [String]
    /// For an image folder (`ImageFolder`): the files, decoded per batch; `pixels` is then
    /// empty and `height` × `width` is the crop size.
    public let files: ImageFiles?

    public var count: Int { labels.count }
    /// Pixels per image.
    public var imageSize: Int { channels * height * width }

    /// Checks that the pixels fill `labels.count` images and that every label is a class.
    /// `path` names the labels' file in the error.
    public init(pixels: [UInt8], labels: [Int32], channels: Int, height: Int, width: Int,
                classCount: Int, classNames: [String] = [], path: String = "<memory>") throws {
        precondition(channels > 0 && height > 0 && width > 0 && classCount > 0,
                     "ImageDataset: channels \(channels), height \(height), width \(width), classes \(classCount) must be positive")
        precondition(classNames.isEmpty || classNames.count == classCount,
                     "ImageDataset: \(classNames.count) class names for \(classCount) classes")
        let size: Int
        do { size = try CheckedSize.product([channels, height, width], what: "image size (channels × height × width)") } catch {
            throw DatasetError.badDimensions(path: path, dimensions: [channels, height, width], reason: "\(error)")
        }
        guard pixels.count / size == labels.count, pixels.count % size == 0 else {
            throw DatasetError.countMismatch(imagesPath: path, images: pixels.count / size, labelsPath: path,
                                             labels: labels.count)
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw DatasetError.labelOutOfRange(path: path, index: bad, label: Int(labels[bad]), classCount: classCount)
        }
        self.pixels = pixels
        self.labels = labels
        self.channels = channels
        self.height = height
        self.width = width
        self.classCount = classCount
        self.classNames = classNames
        self.files = nil
    }

    /// A dataset of image files, one label per file.
    public init(files: ImageFiles, labels: [Int32], channels: Int, height: Int, width: Int, classCount: Int,
                classNames: [String], path: String) throws {
        precondition(files.paths.count == labels.count, "ImageDataset: \(files.paths.count) files, \(labels.count) labels")
        try self.init(pixels: [], labels: [], channels: channels, height: height, width: width, classCount: classCount,
                      classNames: classNames, path: path)
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classCount }) {
            throw DatasetError.labelOutOfRange(path: files.paths[bad], index: bad, label: Int(labels[bad]), classCount: classCount)
        }
        self = ImageDataset(unchecked: [], labels: labels, like: self, files: files)
    }

    /// Without checks, for subsets of a checked dataset.
    init(unchecked pixels: [UInt8], labels: [Int32], like other: ImageDataset, files: ImageFiles? = nil) {
        self.files = files
        self.pixels = pixels
        self.labels = labels
        self.channels = other.channels
        self.height = other.height
        self.width = other.width
        self.classCount = other.classCount
        self.classNames = other.classNames
    }

    /// The first `n` examples (all of them when `n >= count`).
    public func prefix(_ n: Int) -> ImageDataset {
        precondition(n >= 0, "ImageDataset.prefix: negative count \(n)")
        if n >= count { return self }
        if files != nil { return subset(Array(0..<n)) }
        return ImageDataset(unchecked: Array(pixels[0..<(n * imageSize)]), labels: Array(labels[0..<n]), like: self)
    }

    /// The examples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ImageDataset {
        if let files {
            for i in indices { precondition(i >= 0 && i < count, "ImageDataset.subset: index \(i) out of 0..<\(count)") }
            let picked = ImageFiles(paths: indices.map { files.paths[$0] }, channels: files.channels, options: files.options)
            return ImageDataset(unchecked: [], labels: indices.map { labels[$0] }, like: self, files: picked)
        }
        var out = [UInt8]()
        out.reserveCapacity(indices.count * imageSize)
        for i in indices {
            precondition(i >= 0 && i < count, "ImageDataset.subset: index \(i) out of 0..<\(count)")
            out.append(contentsOf: pixels[(i * imageSize)..<((i + 1) * imageSize)])
        }
        return ImageDataset(unchecked: out, labels: indices.map { labels[$0] }, like: self)
    }

    /// Examples per class, indexed by label.
    public var classHistogram: [Int] {
        var h = [Int](repeating: 0, count: classCount)
        for l in labels { h[Int(l)] += 1 }
        return h
    }

    /// Mean pixel over the whole dataset, scaled to [0, 1].
    public var meanPixel: Double {
        guard !pixels.isEmpty else { return 0 }
        var sum = 0
        pixels.withUnsafeBufferPointer { p in for v in p { sum &+= Int(v) } }
        return Double(sum) / Double(pixels.count) / 255
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1], for `Normalization`.
    public func channelStatistics() -> (mean: [Float], std: [Float]) {
        precondition(files == nil, "ImageDataset.channelStatistics: an image folder's pixels are not in memory")
        var mean = [Float](), std = [Float]()
        let plane = height * width
        pixels.withUnsafeBufferPointer { p in
            for c in 0..<channels {
                var s = 0.0, s2 = 0.0
                for i in 0..<count {
                    let base = i * imageSize + c * plane
                    var si = 0, s2i = 0
                    for j in 0..<plane { let v = Int(p[base + j]); si += v; s2i += v * v }
                    s += Double(si); s2 += Double(s2i)
                }
                let n = Double(count * plane)
                let m = s / n / 255
                mean.append(Float(m))
                std.append(Float((max(s2 / n / (255 * 255) - m * m, 0)).squareRoot()))
            }
        }
        return (mean, std)
    }
}

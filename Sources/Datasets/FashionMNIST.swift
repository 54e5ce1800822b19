import Foundation

/// Which part of a dataset.
public enum DatasetSplit: String, Sendable, CaseIterable {
    case train, test
}

extension IDX {
    /// An images file and its labels file as one dataset (channels 1). Fails with a typed
    /// error naming the file for every defect, including a count mismatch between the two files
    /// and labels outside `0..<classCount`.
    public static func loadDataset(images imagesPath: String, labels labelsPath: String, classCount: Int,
                                   classNames: [String] = []) throws -> ImageDataset {
        let images = try readImages(imagesPath)
        let labels = try readLabels(labelsPath)
        guard images.count == labels.count else {
            throw DatasetError.countMismatch(imagesPath: imagesPath, images: images.count,
                                             labelsPath: labelsPath, labels: labels.count)
        }
        return try ImageDataset(pixels: images.pixels, labels: labels.map { Int32($0) }, channels: 1,
                                height: images.rows, width: images.columns, classCount: classCount,
                                classNames: classNames, path: labelsPath)
    }
}

/// Zalando's Fashion-MNIST (Xiao et al. 2017): 28×28 greyscale images of 10 clothing classes,
/// 60,000 for training and 10,000 for testing, in MNIST's IDX format.
public enum FashionMNIST {
    /// Where Debian's `dataset-fashion-mnist` (installed by `Scripts/setup.sh --data`) puts it.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    public static let classCount = 10
    public static let imageSide = 28
    public static let trainCount = 60_000
    public static let testCount = 10_000

    /// The images and labels file names of a split, gzip'd as distributed.
    public static func fileNames(_ split: DatasetSplit) -> (images: String, labels: String) {
        let stem = split == .train ? "train" : "t10k"
        return ("\(stem)-images-idx3-ubyte.gz", "\(stem)-labels-idx1-ubyte.gz")
    }

    /// Loads one split from `directory`. Uncompressed files (the same names without ".gz") are
    /// used when the gzip'd ones are absent.
    public static func load(_ split: DatasetSplit, directory: String = defaultDirectory) throws -> ImageDataset {
        try DatasetError.checkDirectory(directory)
        let names = fileNames(split)
        return try IDX.loadDataset(images: locate(names.images, in: directory),
                                   labels: locate(names.labels, in: directory),
                                   classCount: classCount, classNames: classNames)
    }

    /// Whether both files of `split` are present in `directory`.
    public static func isAvailable(_ split: DatasetSplit = .train, directory: String = defaultDirectory) -> Bool {
        let names = fileNames(split)
        return [names.images, names.labels].allSatisfy { FileManager.default.fileExists(atPath: locate($0, in: directory)) }
    }

    static func locate(_ name: String, in directory: String) -> String {
        let gz = (directory as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: gz) { return gz }
        let plain = String(gz.dropLast(3))
        return FileManager.default.fileExists(atPath: plain) ? plain : gz
    }
}

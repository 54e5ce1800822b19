import Datasets
import Foundation

/// Which data to train or evaluate on: `fashion-mnist` (from `--data-dir`), `cifar10:DIR` or
/// `cifar100:DIR` (the extracted binary distributions), `folder:DIR[,option…]`, an image folder
/// in torchvision's `ImageFolder` layout (`ImageFolder`; options as `ImageFolderOptions.parse`,
/// e.g. `folder:photos,val-fraction=0.2,skip-bad-images`), or a numeric table for regression,
/// `csv:TRAIN.csv` with its test table `csv:TEST.csv` (`RegressionTable`, trained by
/// `RegressionRun`).
public enum DatasetSpec: Codable, Equatable, Sendable, CustomStringConvertible {
    case fashionMNIST(directory: String)
    case cifar10(directory: String)
    case cifar100(directory: String)
    case folder(directory: String, options: ImageFolderOptions)
    /// Two CSV tables: a header row, the target in the last column, the features in the others.
    case table(train: String, test: String)

    /// Parses `--data` (and `--test-data`, which only tables take: an image data set brings
    /// its test split); `dataDirectory` is where Fashion-MNIST is read from.
    public static func parse(_ text: String, testData: String? = nil,
                             dataDirectory: String = FashionMNIST.defaultDirectory) throws -> DatasetSpec {
        let lower = text.lowercased()
        if lower.hasPrefix("csv:") {
            let train = String(text.dropFirst(4))
            guard !train.isEmpty else { throw TrainingError.invalidOption("--data", reason: "csv: needs a path, e.g. csv:train.csv") }
            guard let testData, testData.lowercased().hasPrefix("csv:"), testData.count > 4 else {
                throw TrainingError.invalidOption("--test-data", reason: "csv training data needs its test table: --test-data csv:TEST.csv")
            }
            return .table(train: train, test: String(testData.dropFirst(4)))
        }
        guard testData == nil else {
            throw TrainingError.invalidOption("--test-data", reason: "only for tables (--data csv:TRAIN.csv); image data sets bring their test split")
        }
        if lower == "fashion-mnist" || lower == "fashionmnist" { return .fashionMNIST(directory: dataDirectory) }
        if lower.hasPrefix("folder:") {
            // Trailing ",key=value" and ",skip-bad-images" items are options; the rest is the path.
            var items = text.dropFirst("folder:".count).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            var options = [String]()
            while items.count > 1, let last = items.last, last.contains("=") || last == "skip-bad-images" {
                options.insert(last, at: 0)
                items.removeLast()
            }
            let dir = items.joined(separator: ",")
            guard !dir.isEmpty else { throw TrainingError.unknownDataset(text) }
            return .folder(directory: dir, options: try ImageFolderOptions.parse(options))
        }
        for (prefix, make) in [("cifar10:", DatasetSpec.cifar10), ("cifar100:", DatasetSpec.cifar100)] as [(String, (String) -> DatasetSpec)] {
            if lower.hasPrefix(prefix) {
                let dir = String(text.dropFirst(prefix.count))
                guard !dir.isEmpty else { throw TrainingError.unknownDataset(text) }
                return make(dir)
            }
        }
        throw TrainingError.unknownDataset(text)
    }

    public var name: String {
        switch self {
        case .fashionMNIST: return "fashion-mnist"
        case .cifar10: return "cifar10"
        case .cifar100: return "cifar100"
        case .folder: return "folder"
        case .table: return "csv"
        }
    }

    /// Whether this is a table (regression) rather than an image data set.
    public var isTable: Bool {
        if case .table = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .fashionMNIST(let d), .cifar10(let d), .cifar100(let d), .folder(let d, _): return "\(name) (\(d))"
        case .table(let train, let test): return "\(name) (\(train), \(test))"
        }
    }

    /// The images of `split`; an error for a table, which `table(_:)` reads.
    public func load(_ split: DatasetSplit) throws -> ImageDataset {
        switch self {
        case .fashionMNIST(let d): return try FashionMNIST.load(split, directory: d)
        case .cifar10(let d): return try CIFAR.load(.cifar10, split, directory: d)
        case .cifar100(let d): return try CIFAR.load(.cifar100Fine, split, directory: d)
        case .folder(let d, let options): return try ImageFolder.load(split, directory: d, options: options)
        case .table(let train, _):
            throw TrainingError.invalidOption("--data", reason: "csv:\(train) is a table, not an image data set: it trains"
                                              + " an MLP by regression (RegressionRun) and has no images to evaluate")
        }
    }

    /// The path of a table's `split`; nil for image data sets.
    public func tablePath(_ split: DatasetSplit) -> String? {
        guard case .table(let train, let test) = self else { return nil }
        return split == .train ? train : test
    }

    /// The per-channel normalisation of the usual training recipes (an image folder's for its
    /// `channels` option, RGB when that is automatic: see `normalization(for:)`); nil for
    /// tables, whose features are used as they are (standardise them first).
    public var normalization: Normalization? {
        switch self {
        case .fashionMNIST: return .fashionMNIST
        case .cifar10: return .cifar10
        case .cifar100: return Normalization(mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762])
        case .folder(_, let options): return options.normalization(channels: options.channels ?? 3)
        case .table: return nil
        }
    }

    /// The normalisation for a loaded dataset of this spec (an image folder's channel count is
    /// known only once it is scanned).
    public func normalization(for dataset: ImageDataset) -> Normalization? {
        if case .folder(_, let options) = self { return options.normalization(channels: dataset.channels) }
        return normalization
    }

    /// Training augmentation: none for Fashion-MNIST (as in the textbook) and tables, the
    /// standard crop-and-flip for CIFAR, torchvision's random-resized crop and flip for folders.
    public var trainAugmentation: Augmentation {
        switch self {
        case .fashionMNIST, .table: return .none
        case .cifar10, .cifar100: return .cifar
        case .folder(_, let options): return .randomResizedCrop(minScale: options.minScale, flip: true)
        }
    }
}

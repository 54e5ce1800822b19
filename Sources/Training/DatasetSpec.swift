import Datasets
import Foundation

/// Which dataset to train or evaluate on: `fashion-mnist` (from `--data-dir`), `cifar10:DIR`
/// or `cifar100:DIR` (the extracted binary distributions), or `folder:DIR[,option…]`, an
/// image folder in torchvision's `ImageFolder` layout (`ImageFolder`; options as
/// `ImageFolderOptions.parse`, e.g. `folder:photos,val-fraction=0.2,skip-bad-images`).
public enum DatasetSpec: Codable, Equatable, Sendable, CustomStringConvertible {
    case fashionMNIST(directory: String)
    case cifar10(directory: String)
    case cifar100(directory: String)
    case folder(directory: String, options: ImageFolderOptions)

    /// Parses `--data`; `dataDirectory` is where Fashion-MNIST is read from.
    public static func parse(_ text: String, dataDirectory: String = FashionMNIST.defaultDirectory) throws -> DatasetSpec {
        let lower = text.lowercased()
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
        }
    }

    public var directory: String {
        switch self {
        case .fashionMNIST(let d), .cifar10(let d), .cifar100(let d), .folder(let d, _): return d
        }
    }

    public var description: String { "\(name) (\(directory))" }

    public func load(_ split: DatasetSplit) throws -> ImageDataset {
        switch self {
        case .fashionMNIST(let d): return try FashionMNIST.load(split, directory: d)
        case .cifar10(let d): return try CIFAR.load(.cifar10, split, directory: d)
        case .cifar100(let d): return try CIFAR.load(.cifar100Fine, split, directory: d)
        case .folder(let d, let options): return try ImageFolder.load(split, directory: d, options: options)
        }
    }

    /// The per-channel normalisation of the usual training recipes (an image folder's for
    /// its `channels` option, RGB when that is automatic: see `normalization(for:)`).
    public var normalization: Normalization {
        switch self {
        case .fashionMNIST: return .fashionMNIST
        case .cifar10: return .cifar10
        case .cifar100: return Normalization(mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762])
        case .folder(_, let options): return options.normalization(channels: options.channels ?? 3)
        }
    }

    /// The normalisation for a loaded dataset of this spec (an image folder's channel count is
    /// known only once it is scanned).
    public func normalization(for dataset: ImageDataset) -> Normalization {
        if case .folder(_, let options) = self { return options.normalization(channels: dataset.channels) }
        return normalization
    }

    /// Training augmentation: none for Fashion-MNIST (as in the textbook), the standard
    /// crop-and-flip for CIFAR.
    public var trainAugmentation: Augmentation {
        switch self {
        case .fashionMNIST: return .none
        case .cifar10, .cifar100: return .cifar
        case .folder(_, let options): return .randomResizedCrop(minScale: options.minScale, flip: true)
        }
    }
}

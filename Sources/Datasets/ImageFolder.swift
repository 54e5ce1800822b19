import Foundation
import Runtime

/// How an image folder is read: its split, its channels, its crop and its normalisation, and
/// whether bad files stop the run or are left out.
public struct ImageFolderOptions: Codable, Equatable, Sendable {
    /// Split one tree `DIR/<class>/*` into training and validation, this fraction of every
    /// class (rounded) to validation; nil: the folder has `train/` and `val/` (or `test/`).
    public var valFraction: Double?
    /// Seeds that split.
    public var splitSeed: UInt64
    /// 1 (grey) or 3 (RGB); nil: 1 when the first readable image of every class is grey, else 3.
    public var channels: Int?
    /// Leave out files that cannot be decoded (counted in the log) instead of failing.
    public var skipBadImages: Bool
    /// Side of the square crop when the loader sets no size; the loader's `resize` (in
    /// training, the model's input: `--input`) overrides it. nil: 224.
    public var crop: Int?
    /// Evaluation's shorter-side resize; nil: the output side · 256/224 (torchvision's 256 for 224).
    public var resize: Int?
    /// The random crop's smallest area fraction (torchvision: 0.08).
    public var minScale: Double
    /// Normalisation; nil: ImageNet's mean and std for RGB, their channel averages for grey.
    public var mean: [Float]?
    public var std: [Float]?

    public init(valFraction: Double? = nil, splitSeed: UInt64 = 0, channels: Int? = nil, skipBadImages: Bool = false,
                crop: Int? = nil, resize: Int? = nil, minScale: Double = 0.08, mean: [Float]? = nil, std: [Float]? = nil) {
        self.valFraction = valFraction
        self.splitSeed = splitSeed
        self.channels = channels
        self.skipBadImages = skipBadImages
        self.crop = crop
        self.resize = resize
        self.minScale = minScale
        self.mean = mean
        self.std = std
    }

    /// ImageNet's per-channel statistics (torchvision's presets).
    public static let imageNet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    public func normalization(channels: Int) -> Normalization {
        if let mean, let std { return Normalization(mean: mean, std: std) }
        if channels == 3 { return ImageFolderOptions.imageNet }
        return Normalization(mean: [0.449], std: [0.226])
    }

    /// Reads `key=value` items (`val-fraction=0.2`, `split-seed=1`, `channels=1`, `resize=256`, `min-scale=0.08`, `mean=0.5/0.5/0.5`, `std=...`) and the flag
    /// `skip-bad-images`; the error names the item.
    public static func parse(_ items: [String]) throws -> ImageFolderOptions {
        var o = ImageFolderOptions()
        func bad(_ item: String, _ why: String) -> DatasetError {
            .badImageFolder(path: item, reason: "bad image-folder option: \(why); options are val-fraction=F, split-seed=N,"
                            + " channels=1|3, resize=N, min-scale=F, mean=A/B/C, std=A/B/C, skip-bad-images")
        }
        for item in items {
            if item == "skip-bad-images" { o.skipBadImages = true; continue }
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw bad(item, "expected key=value") }
            let (key, value) = (parts[0], parts[1])
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let v = Int(value), range.contains(v) else { throw bad(item, "\(key) must be an integer in \(range)") }
                return v
            }
            func floats() throws -> [Float] {
                let v = value.split(separator: "/").compactMap { Float($0) }
                guard !v.isEmpty, v.count == value.split(separator: "/").count else { throw bad(item, "\(key) must be numbers separated by /") }
                return v
            }
            switch key {
            case "val-fraction":
                guard let v = Double(value), v > 0, v < 1 else { throw bad(item, "val-fraction must be in (0, 1)") }
                o.valFraction = v
            case "split-seed":
                guard let v = UInt64(value) else { throw bad(item, "split-seed must be a non-negative integer") }
                o.splitSeed = v
            case "channels":
                let v = try int(1...3)
                guard v != 2 else { throw bad(item, "channels must be 1 or 3") }
                o.channels = v
            case "resize": o.resize = try int(1...16384)
            case "min-scale":
                guard let v = Double(value), v > 0, v <= 1 else { throw bad(item, "min-scale must be in (0, 1]") }
                o.minScale = v
            case "mean": o.mean = try floats()
            case "std":
                let v = try floats()
                guard v.allSatisfy({ $0 > 0 }) else { throw bad(item, "std values must be positive") }
                o.std = v
            default: throw bad(item, "unknown key '\(key)'")
            }
        }
        if (o.mean == nil) != (o.std == nil) || (o.mean?.count ?? 0) != (o.std?.count ?? 0) {
            throw bad(items.joined(separator: ","), "give mean and std together, with one value per channel")
        }
        if let m = o.mean, let c = o.channels, m.count != c {
            throw bad(items.joined(separator: ","), "\(m.count) mean values for \(c) channels")
        }
        return o
    }
}

/// The image files of one split of an image folder, read and decoded when a batch needs them
/// (by `DataLoader`, on its prefetch thread): the data set is never held in memory.
public final class ImageFiles: @unchecked Sendable {
    public let paths: [String]
    public let channels: Int
    public let options: ImageFolderOptions
    private let lock = NSLock()
    private var bad: [String: String] = [:]

    /// Files decoded to `channels` (1 or 3) channels; `options` supplies `skipBadImages` and
    /// the evaluation `resize`.
    public init(paths: [String], channels: Int, options: ImageFolderOptions) {
        precondition(channels == 1 || channels == 3, "ImageFiles: \(channels) channels, expected 1 or 3")
        self.paths = paths
        self.channels = channels
        self.options = options
    }

    /// Files left out while training (path → reason), when `skipBadImages`.
    public var badFiles: [String: String] { lock.lock(); defer { lock.unlock() }; return bad }

    /// The image of example `index`, in `channels` channels; a `DatasetError.badImage` naming
    /// the file otherwise.
    public func decode(_ index: Int) throws -> DecodedImage {
        let path = paths[index]
        if options.skipBadImages, let reason = badFiles[path] { throw DatasetError.badImage(path: path, reason: reason) }
        let bytes: [UInt8]
        do {
            bytes = try FileBytes.readRaw(path)
        } catch DatasetError.missingFile {
            throw DatasetError.badImage(path: path, reason: "the file is gone (it was there when the folder was scanned)")
        } catch DatasetError.unreadable(_, let reason) {
            throw DatasetError.badImage(path: path, reason: "cannot read it (\(reason))")
        }
        do {
            return try ImageDecoding.decode(bytes).converted(to: channels)
        } catch let e as ImageDecodingError {
            throw DatasetError.badImage(path: path, reason: e.description)
        }
    }

    /// Records a file that failed while training with `skipBadImages`; logs it the first time.
    func leaveOut(_ path: String, reason: String) {
        lock.lock()
        let new = bad.updateValue(reason, forKey: path) == nil
        let count = bad.count
        lock.unlock()
        if new { ImageFolder.log("image folder: left out \(path): \(reason) (\(count) left out while training so far)") }
    }
}

/// torchvision's `ImageFolder` convention: `DIR/train/<class>/*` and `DIR/val/<class>/*`
/// (`test/` is accepted for `val/`), or one tree `DIR/<class>/*` split by
/// `ImageFolderOptions.valFraction`. Classes are the sub-folders sorted by name (code point
/// order, like Python's `sorted`), labels their indices; files are found recursively, those
/// ending in .png, .jpg or .jpeg (any case), hidden ones ignored. Examples are ordered class by
/// class in turn (first file of every class, then the second…), so `--limit` keeps all classes.
///
/// A zero-byte file, a file that is not PNG or JPEG by its signature, a folder that cannot be
/// listed and an empty class are found when the folder is scanned; a corrupt or truncated file
/// or one that disappears is found when a batch decodes it. Each is a `DatasetError` naming the
/// file, or with `skipBadImages` a line in the log and the file left out. A class of the
/// training split missing from the validation split (or the reverse) is always an error.
public enum ImageFolder {
    /// Where scan results and left-out files are reported (standard error by default).
    nonisolated(unsafe) public static var log: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The `split` of the folder at `directory` as a dataset whose images are decoded per batch.
    /// Its `height` × `width` is the crop (or 224 when `crop` is nil; the loader's resize, when
    /// set, is the size rendered).
    public static func load(_ split: DatasetSplit, directory: String, options: ImageFolderOptions = ImageFolderOptions()) throws -> ImageDataset {
        var skipped: [(String, String)] = []
        func fail(_ error: DatasetError) throws {
            guard options.skipBadImages else { throw error }
            switch error {
            case .badImage(let p, let r), .badImageFolder(let p, let r): skipped.append((p, r))
            default: throw error
            }
        }
        let root = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.badImageFolder(path: root, reason: "no such folder")
        }
        let trainDir = (root as NSString).appendingPathComponent("train")
        let valDir = ["val", "test"].map { (root as NSString).appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0) }
        let hasTrain = FileManager.default.fileExists(atPath: trainDir)

        var classes: [String]
        var files: [[String]]   // per class, this split
        if let fraction = options.valFraction {
            if hasTrain {
                throw DatasetError.badImageFolder(path: root, reason: "has a train/ folder, so it is already split: leave out val-fraction")
            }
            classes = try classNames(in: root, fail: fail)
            var all = [[String]]()
            for name in classes { all.append(try imageFiles(in: (root as NSString).appendingPathComponent(name), fail: fail)) }
            files = all.enumerated().map { (label, list) in
                var rng = SeededGenerator(seed: mix(options.splitSeed, UInt64(label)))
                var order = list
                if order.count > 1 {
                    for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                }
                let valCount = Int((fraction * Double(list.count)).rounded())
                let chosen = split == .train ? order.dropFirst(valCount) : order.prefix(valCount)
                return chosen.sorted(by: codePointOrder)
            }
        } else {
            guard hasTrain, let valDir else {
                throw DatasetError.badImageFolder(path: root, reason: "needs train/ and val/ sub-folders of class folders"
                                                  + " (\(hasTrain ? "val/ is missing" : "train/ is missing")), or val-fraction=F to split one tree of class folders")
            }
            classes = try classNames(in: trainDir, fail: fail)
            let valClasses = try classNames(in: valDir, fail: fail)
            if let missing = classes.first(where: { !valClasses.contains($0) }) {
                throw DatasetError.badImageFolder(path: (valDir as NSString).appendingPathComponent(missing),
                                                  reason: "class '\(missing)' of train/ has no folder in \((valDir as NSString).lastPathComponent)/: add it (with images), or remove it from train/")
            }
            if let extra = valClasses.first(where: { !classes.contains($0) }) {
                throw DatasetError.badImageFolder(path: (valDir as NSString).appendingPathComponent(extra),
                                                  reason: "class '\(extra)' is not in train/: the model could not learn it; remove it or add it to train/")
            }
            let dir = split == .train ? trainDir : valDir
            files = []
            for name in classes { files.append(try imageFiles(in: (dir as NSString).appendingPathComponent(name), fail: fail)) }
        }
        guard !classes.isEmpty else {
            throw DatasetError.badImageFolder(path: root, reason: "no class folders")
        }
        for (label, list) in files.enumerated() where list.isEmpty {
            let path = (hasTrain ? (split == .train ? trainDir : valDir!) : root) as NSString
            try fail(.badImageFolder(path: path.appendingPathComponent(classes[label]),
                                     reason: "class '\(classes[label])' has no PNG or JPEG files\(options.valFraction == nil ? "" : " in this split")"))
        }
        // Class by class in turn, so that any prefix has every class.
        var paths = [String](), labels = [Int32]()
        let longest = files.map(\.count).max() ?? 0
        for i in 0..<longest {
            for (label, list) in files.enumerated() where i < list.count {
                paths.append(list[i])
                labels.append(Int32(label))
            }
        }
        guard !paths.isEmpty else {
            throw DatasetError.badImageFolder(path: root, reason: "no usable images in the \(split == .train ? "training" : "validation") split")
        }
        let channels = try options.channels ?? detectChannels(paths: files)
        if let m = options.mean, m.count != channels {
            throw DatasetError.badImageFolder(path: root, reason: "\(m.count) mean values for \(channels)-channel images; give \(channels) or set channels=")
        }
        let crop = options.crop ?? 224
        for (path, reason) in skipped { log("image folder: left out \(path): \(reason)") }
        log("image folder \(root) (\(split == .train ? "training" : "validation")): \(paths.count) images in \(classes.count) classes,"
            + " \(channels) channel\(channels == 1 ? "" : "s")\(skipped.isEmpty ? "" : ", \(skipped.count) left out as bad");"
            + " decoded per batch in the loader's background thread, not held in memory")
        return try ImageDataset(files: ImageFiles(paths: paths, channels: channels, options: options), labels: labels,
                                channels: channels, height: crop, width: crop, classCount: classes.count,
                                classNames: classes, path: root)
    }

    // MARK: Scanning

    static func codePointOrder(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// Sub-folders of `directory` (symbolic links followed), sorted by code point; an error
    /// when it cannot be listed, or an entry cannot be examined (to `fail`: left out when
    /// skipping bad images).
    static func classNames(in directory: String, fail: (DatasetError) throws -> Void) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw DatasetError.badImageFolder(path: directory, reason: "cannot list it (\(reason(error))); check its permissions")
        }
        var classes = [String]()
        for name in names where !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            var info = stat()
            guard stat(path, &info) == 0 else {
                try fail(.badImageFolder(path: path, reason: "cannot read it (\(String(cString: strerror(errno))))"))
                continue
            }
            guard (info.st_mode & S_IFMT) == S_IFDIR else { continue }
            guard access(path, R_OK | X_OK) == 0 else {
                try fail(.badImageFolder(path: path, reason: "cannot list it (\(String(cString: strerror(errno)))); check its permissions"))
                continue
            }
            classes.append(name)
        }
        return classes.sorted(by: codePointOrder)
    }

    /// The image files under `directory` (recursively), sorted; zero-byte and non-image files
    /// and folders that cannot be listed go to `fail`.
    static func imageFiles(in directory: String, fail: (DatasetError) throws -> Void) throws -> [String] {
        var out = [String]()
        var folders = [directory]
        while let folder = folders.popLast() {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
                try fail(.badImageFolder(path: folder, reason: "cannot list it (\(reason(error))); check its permissions"))
                continue
            }
            for name in names where !name.hasPrefix(".") {
                let path = (folder as NSString).appendingPathComponent(name)
                var info = stat()
                guard stat(path, &info) == 0 else {
                    try fail(.badImage(path: path, reason: "cannot stat it (\(String(cString: strerror(errno))))"))
                    continue
                }
                if (info.st_mode & S_IFMT) == S_IFDIR { folders.append(path); continue }
                guard extensions.contains((name as NSString).pathExtension.lowercased()) else { continue }
                if info.st_size == 0 {
                    try fail(.badImage(path: path, reason: ImageDecodingError.empty.description))
                    continue
                }
                let head: [UInt8]
                do { head = try readHead(path) } catch let e as DatasetError {
                    try fail(.badImage(path: path, reason: "\(e)"))
                    continue
                }
                if ImageDecoding.format(of: head) == nil {
                    let hex = head.map { String(format: "%02x", $0) }.joined(separator: " ")
                    try fail(.badImage(path: path, reason: ImageDecodingError.unknownFormat(head: hex).description))
                    continue
                }
                out.append(path)
            }
        }
        return out.sorted(by: codePointOrder)
    }

    /// The first 8 bytes of a file.
    static func readHead(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 8)
        let n = head.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, 8) }
        guard n >= 0 else { throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        return Array(head.prefix(n))
    }

    /// 1 when the first decodable image (of the first three) of every class is grey, else 3.
    static func detectChannels(paths: [[String]]) throws -> Int {
        for list in paths {
            for path in list.prefix(3) {
                guard let bytes = try? FileBytes.readRaw(path), let image = try? ImageDecoding.decode(bytes) else { continue }
                if image.channels == 3 { return 3 }
                break
            }
        }
        return 1
    }

    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }

    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var g = SeededGenerator(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15))
        return g.next()
    }
}

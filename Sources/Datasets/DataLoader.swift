import Dispatch
import Foundation
import Runtime

/// How a `DataLoader` makes batches.
public struct DataLoaderOptions: Sendable, Equatable {
    public var batchSize: Int
    /// A new seeded permutation every epoch; otherwise dataset order.
    public var shuffle: Bool
    /// Drop the last batch of an epoch when it is smaller than `batchSize`.
    public var dropLast: Bool
    /// Bilinear resize (align_corners = false) after augmentation, e.g. 28×28 → 96×96.
    public var resize: ImageSize?
    /// Per-channel normalisation of pixels scaled to [0, 1]; nil leaves them in [0, 1].
    public var normalization: Normalization?
    public var augmentation: Augmentation
    /// Drop the last batch of an epoch when it holds fewer than this many examples (1: never):
    /// a model whose batch norm sees one value per channel per example cannot train on a batch
    /// of one (`Architecture.minimumTrainingBatch`).
    public var minimumLastBatch: Int = 1
    /// Use only the first `limit` examples of the dataset.
    public var limit: Int?
    /// Build the next batch on another thread while the current one is used.
    public var prefetch: Bool
    /// Seeds the shuffles and augmentation draws.
    public var seed: UInt64

    public init(batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, resize: ImageSize? = nil,
                normalization: Normalization? = nil, augmentation: Augmentation = .none, limit: Int? = nil,
                prefetch: Bool = true, seed: UInt64 = 0, minimumLastBatch: Int = 1) {
        precondition(batchSize > 0, "DataLoaderOptions: batch size \(batchSize) must be positive")
        precondition(minimumLastBatch >= 1, "DataLoaderOptions: minimum last batch \(minimumLastBatch) must be positive")
        precondition(limit.map { $0 >= 0 } ?? true, "DataLoaderOptions: negative limit \(limit!)")
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.resize = resize
        self.normalization = normalization
        self.augmentation = augmentation
        self.limit = limit
        self.prefetch = prefetch
        self.seed = seed
        self.minimumLastBatch = minimumLastBatch
    }
}

/// A batch: images channel-major `(C, N, H, W)` float32 (category `.activations`), and the
/// N labels in the same order.
public struct Batch: @unchecked Sendable {
    public let images: Tensor
    public let labels: [Int32]
    /// Where it comes from: epoch and batch index within the epoch.
    public let epoch: Int
    public let index: Int
    /// Dataset indices of the examples, in batch order.
    public let exampleIndices: [Int]
    /// Examples in the whole global batch, of which a data-parallel rank's batch is its slice
    /// (`DataLoader.slice`); equal to `labels.count` for one process.
    public let globalCount: Int
}

/// Where a `DataLoader` is: enough to resume exactly. The random state is counter-based, a
/// pure function of (seed, epoch) for the shuffle and (seed, epoch, position) for each
/// example's augmentation draw, so `seed` with `epoch` and `position` is the whole RNG state.
public struct DataLoaderState: Codable, Equatable, Sendable {
    public var seed: UInt64
    public var epoch: Int
    /// Examples of this epoch already delivered (a multiple of `batchSize`, or all of them).
    public var position: Int
    /// Examples per epoch (after `limit`) and batch size, checked on restore.
    public var exampleCount: Int
    public var batchSize: Int

    public init(seed: UInt64, epoch: Int, position: Int, exampleCount: Int, batchSize: Int) {
        self.seed = seed
        self.epoch = epoch
        self.position = position
        self.exampleCount = exampleCount
        self.batchSize = batchSize
    }
}

/// Why a saved `DataLoaderState` cannot be restored into a loader.
public struct DataLoaderStateError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public var description: String {
        "cannot restore the data loader state: \(reason); resume with the same dataset, limit, batch size and seed"
    }
}

/// Seeded, resumable batches of an `ImageDataset`.
///
/// ```
/// let loader = DataLoader(train, options: .init(batchSize: 64, resize: ImageSize(96)))
/// for _ in 0..<epochs { while let batch = loader.next() { ... } }
/// ```
/// `next()` returns the current epoch's batches, then nil once, and the loader moves to the
/// next epoch. Batch `(epoch, index)` depends only on the dataset, the options and those two
/// numbers, so it is the same with or without prefetching, on any thread count, and after
/// `restore(_:)`.
public final class DataLoader: @unchecked Sendable {
    public let dataset: ImageDataset
    public let options: DataLoaderOptions
    /// Examples per epoch: the dataset size, or `limit`.
    public let exampleCount: Int
    /// The share of every global batch this loader delivers (`RankSlice.whole` for one process).
    /// Epochs, batch indices and `state` stay those of the global batches.
    public let slice: RankSlice
    private let rows: ImageTransforms.Axis?
    private let columns: ImageTransforms.Axis?

    private var epoch = 0
    private var position = 0

    private let lock = NSLock()
    private var orders: [Int: [Int]] = [:]
    private let queue = DispatchQueue(label: "DataLoader.prefetch")
    private var pending: (key: [Int], group: DispatchGroup, box: ResultBox)?

    private final class ResultBox: @unchecked Sendable { var batch: Result<Batch, Error>? }

    public convenience init(_ dataset: ImageDataset, options: DataLoaderOptions) {
        self.init(dataset, options: options, slice: .whole)
    }

    /// A loader of `slice`'s share of every global batch, for one rank of a data-parallel job.
    public init(_ dataset: ImageDataset, options: DataLoaderOptions, slice: RankSlice) {
        if let n = options.normalization {
            precondition(n.mean.count == dataset.channels,
                         "DataLoader: normalisation for \(n.mean.count) channels, dataset has \(dataset.channels)")
        }
        if case .randomCropFlip(let padding, _) = options.augmentation {
            precondition(padding >= 0, "DataLoader: negative crop padding \(padding)")
            precondition(dataset.files == nil, "DataLoader: an image folder takes .randomResizedCrop, not .randomCropFlip")
        }
        if case .randomResizedCrop = options.augmentation {
            precondition(dataset.files != nil, "DataLoader: .randomResizedCrop needs an image folder")
        }
        self.dataset = dataset
        self.options = options
        self.slice = slice
        self.exampleCount = min(dataset.count, options.limit ?? dataset.count)
        if dataset.files == nil, let size = options.resize, size != ImageSize(height: dataset.height, width: dataset.width) {
            rows = ImageTransforms.Axis(from: dataset.height, to: size.height)
            columns = ImageTransforms.Axis(from: dataset.width, to: size.width)
        } else {
            rows = nil
            columns = nil
        }
    }

    /// `(C, H, W)` of the images in a batch.
    public var imageShape: [Int] {
        [dataset.channels, options.resize?.height ?? dataset.height, options.resize?.width ?? dataset.width]
    }

    public var batchesPerEpoch: Int {
        DataLoader.batchesPerEpoch(exampleCount: exampleCount, batchSize: options.batchSize, dropLast: options.dropLast,
                                   minimumLastBatch: options.minimumLastBatch)
    }

    /// Full batches, plus the last partial one unless `dropLast` or it is smaller than
    /// `minimumLastBatch` (overflow-free for any batch size).
    public static func batchesPerEpoch(exampleCount: Int, batchSize: Int, dropLast: Bool, minimumLastBatch: Int) -> Int {
        let full = exampleCount / batchSize, rest = exampleCount % batchSize
        return full + (rest > 0 && !dropLast && rest >= minimumLastBatch ? 1 : 0)
    }

    // MARK: State

    public var state: DataLoaderState {
        DataLoaderState(seed: options.seed, epoch: epoch, position: position, exampleCount: exampleCount,
                        batchSize: options.batchSize)
    }

    /// Continues from a saved state: the next batch is the one that would have followed.
    public func restore(_ saved: DataLoaderState) throws {
        func fail(_ reason: String) -> DataLoaderStateError { DataLoaderStateError(reason: reason) }
        guard saved.seed == options.seed else { throw fail("it was saved with seed \(saved.seed), this loader has \(options.seed)") }
        guard saved.exampleCount == exampleCount else {
            throw fail("it was saved with \(saved.exampleCount) examples per epoch, this loader has \(exampleCount)")
        }
        guard saved.batchSize == options.batchSize else {
            throw fail("it was saved with batch size \(saved.batchSize), this loader has \(options.batchSize)")
        }
        guard saved.epoch >= 0 else { throw fail("epoch \(saved.epoch) is negative") }
        guard saved.position >= 0, saved.position <= exampleCount else {
            throw fail("position \(saved.position) is outside 0...\(exampleCount), the examples of an epoch")
        }
        // Overflow-free: a batch size near Int.max must not trap here.
        let index = CheckedSize.ceilingDivision(saved.position, by: options.batchSize)
        let (start, overflow) = index.multipliedReportingOverflow(by: options.batchSize)
        guard index <= batchesPerEpoch, saved.position == (overflow ? exampleCount : min(start, exampleCount)) else {
            throw fail("epoch \(saved.epoch) position \(saved.position) is not a batch boundary of this loader")
        }
        epoch = saved.epoch
        position = saved.position
    }

    // MARK: Iteration

    /// The next batch of the current epoch, or nil when it is over (the loader then moves to
    /// the next epoch). Throws only for an image folder: a file that cannot be decoded (a
    /// `DatasetError.badImage` naming it), unless the folder skips bad images (then the batch
    /// is smaller).
    public func next() throws -> Batch? {
        while true {
            let index = CheckedSize.ceilingDivision(position, by: options.batchSize)
            if index >= batchesPerEpoch {
                epoch += 1
                position = 0
                return nil
            }
            let batch = try take(epoch: epoch, index: index)
            position = min((index + 1) * options.batchSize, exampleCount)
            if options.prefetch {
                let following = index + 1 < batchesPerEpoch ? (epoch, index + 1) : (epoch + 1, 0)
                if batchesPerEpoch > 0 { schedule(epoch: following.0, index: following.1) }
            }
            // An image folder's batch whose every file was left out as bad: go on to the next.
            // (Any other empty batch is a rank's empty slice, which the rank must still step.)
            if !batch.labels.isEmpty || dataset.files == nil { return batch }
        }
    }

    private func take(epoch: Int, index: Int) throws -> Batch {
        if let p = pending {
            pending = nil
            p.group.wait()
            if p.key == [epoch, index], let batch = p.box.batch { return try batch.get() }
        }
        return try batch(epoch: epoch, index: index)
    }

    private func schedule(epoch: Int, index: Int) {
        let group = DispatchGroup()
        let box = ResultBox()
        pending = ([epoch, index], group, box)
        queue.async(group: group) { [self] in box.batch = Result { try batch(epoch: epoch, index: index) } }
    }

    /// The dataset indices in epoch `epoch`'s order: a Fisher–Yates shuffle seeded from
    /// (seed, epoch) when shuffling, else 0..<exampleCount.
    public func order(epoch: Int) -> [Int] {
        guard options.shuffle else { return Array(0..<exampleCount) }
        lock.lock()
        defer { lock.unlock() }
        if let cached = orders[epoch] { return cached }
        var rng = SeededGenerator(seed: DataLoader.streamSeed(options.seed, UInt64(epoch), 0x5348_5546))
        var order = Array(0..<exampleCount)
        if exampleCount > 1 {
            for i in stride(from: exampleCount - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        if orders.count >= 3 { orders.removeValue(forKey: orders.keys.min()!) }
        orders[epoch] = order
        return order
    }

    /// Batch `index` of epoch `epoch` (this loader's slice of it), built now on the calling
    /// thread (and `Parallel`'s).
    public func batch(epoch: Int, index: Int) throws -> Batch {
        precondition(index >= 0 && index < batchesPerEpoch,
                     "DataLoader.batch: index \(index) out of 0..<\(batchesPerEpoch)")
        let globalStart = index * options.batchSize
        let globalEnd = min(globalStart + options.batchSize, exampleCount)
        let part = slice.range(inBatchOf: globalEnd - globalStart)
        let start = globalStart + part.lowerBound, end = globalStart + part.upperBound
        let indices = Array(order(epoch: epoch)[start..<end])
        let draws = (start..<end).map { position -> CropFlip in
            guard options.augmentation != .none else { return .identity }
            var rng = SeededGenerator(seed: DataLoader.streamSeed(options.seed, UInt64(epoch), UInt64(position) + 1))
            return CropFlip(options.augmentation, using: &rng)
        }
        if let files = dataset.files {
            let seeds = (start..<end).map { DataLoader.streamSeed(options.seed, UInt64(epoch), UInt64($0) + 1) }
            let (images, kept) = try renderFiles(files, indices: indices, seeds: seeds)
            let picked = kept.map { indices[$0] }
            // (Under mpirun, images left out as bad on one rank are not known to the others: the
            // global count stays the batch's, so the loss weights treat them as present.)
            return Batch(images: images, labels: picked.map { dataset.labels[$0] }, epoch: epoch, index: index,
                         exampleIndices: picked, globalCount: globalEnd - globalStart)
        }
        let images = render(indices: indices, draws: draws)
        return Batch(images: images, labels: indices.map { dataset.labels[$0] }, epoch: epoch, index: index,
                     exampleIndices: indices, globalCount: globalEnd - globalStart)
    }

    /// The images of `indices` as a `(C, N, H, W)` tensor.
    func render(indices: [Int], draws: [CropFlip]) -> Tensor {
        let c = dataset.channels, h = dataset.height, w = dataset.width
        let shape = imageShape
        let n = indices.count, outH = shape[1], outW = shape[2]
        let out = Tensor(shape: [c, n, outH, outW], category: .activations)
        let dst = out.pointer
        // One source-resolution image per thread when resizing.
        let threads = max(1, min(Parallel.threadCount, n))
        let stage = rows == nil ? nil : Tensor(shape: [threads, c, h, w], category: .scratch)
        dataset.pixels.withUnsafeBufferPointer { pixels in
            Parallel.forEach(threads) { t in
                for j in Parallel.chunk(t, of: threads, count: n) {
                    let src = pixels.baseAddress! + indices[j] * dataset.imageSize
                    if let stage, let rows, let columns {
                        // (C, H, W) stage -> (C, N, outH, outW) batch
                        let s = stage.pointer + t * c * h * w
                        ImageTransforms.toFloat(src, channels: c, height: h, width: w, draw: draws[j],
                                                dst: s, planeStride: h * w)
                        for ch in 0..<c {
                            ImageTransforms.resizePlane(s + ch * h * w, inWidth: w, rows: rows, columns: columns,
                                                        dst: dst + (ch * n + j) * outH * outW)
                        }
                    } else {
                        ImageTransforms.toFloat(src, channels: c, height: h, width: w, draw: draws[j],
                                                dst: dst + j * h * w, planeStride: n * h * w)
                    }
                    if let norm = options.normalization {
                        for ch in 0..<c {
                            ImageTransforms.normalize(dst + (ch * n + j) * outH * outW, count: outH * outW,
                                                      mean: norm.mean[ch], std: norm.std[ch])
                        }
                    }
                }
            }
        }
        withExtendedLifetime(stage) {}
        return out
    }

    /// An image folder's examples `indices` decoded and transformed (`FolderTransform`) into a
    /// `(C, N, H, W)` tensor, one image per thread at a time; example j's random crop drawn from
    /// `seeds[j]`. Returns the tensor and the batch positions it holds: all of them, or without
    /// the files that failed when the folder skips bad images (else the first failure is thrown).
    func renderFiles(_ files: ImageFiles, indices: [Int], seeds: [UInt64]) throws -> (Tensor, [Int]) {
        let shape = imageShape
        let c = shape[0], outH = shape[1], outW = shape[2], n = indices.count, plane = outH * outW
        let output = ImageSize(height: outH, width: outW)
        let transform: FolderTransform
        if case .randomResizedCrop(let minScale, let flip) = options.augmentation {
            transform = .randomResizedCrop(scale: minScale...1, ratio: (3.0 / 4)...(4.0 / 3), flip: flip)
        } else {
            transform = .resizeCenterCrop(resize: files.options.resize
                                          ?? FolderTransform.evaluationResize(forCrop: min(outH, outW)))
        }
        var out = Tensor(shape: [c, n, outH, outW], category: .activations)
        let lock = NSLock()
        var failures: [Int: Error] = [:]
        let threads = max(1, min(Parallel.threadCount, n))
        let dst = out.pointer
        Parallel.forEach(threads) { t in
            for j in Parallel.chunk(t, of: threads, count: n) {
                do {
                    let image = try files.decode(indices[j])
                    var rng = SeededGenerator(seed: seeds[j])
                    transform.apply(image, output: output, using: &rng, dst: dst + j * plane, planeStride: n * plane)
                    if let norm = options.normalization {
                        for ch in 0..<c {
                            ImageTransforms.normalize(dst + (ch * n + j) * plane, count: plane, mean: norm.mean[ch], std: norm.std[ch])
                        }
                    }
                } catch {
                    lock.lock(); failures[j] = error; lock.unlock()
                }
            }
        }
        guard !failures.isEmpty else { return (out, Array(0..<n)) }
        if !files.options.skipBadImages, let first = failures.keys.min() { throw failures[first]! }
        for error in failures.values {
            if case DatasetError.badImage(let path, let reason) = error { files.leaveOut(path, reason: reason) }
            else { throw error }
        }
        let kept = (0..<n).filter { failures[$0] == nil }
        if kept.count < n {
            let compact = Tensor(shape: [c, kept.count, outH, outW], category: .activations)
            for ch in 0..<c {
                for (k, j) in kept.enumerated() {
                    (compact.pointer + (ch * kept.count + k) * plane).update(from: dst + (ch * n + j) * plane, count: plane)
                }
            }
            out = compact
        }
        return (out, kept)
    }

    /// A well-mixed seed for the stream `(seed, a, b)` (SplitMix64's finaliser, chained).
    static func streamSeed(_ seed: UInt64, _ a: UInt64, _ b: UInt64) -> UInt64 {
        func mix(_ x: UInt64) -> UInt64 {
            var z = x &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return mix(mix(mix(seed) ^ a) ^ b)
    }
}

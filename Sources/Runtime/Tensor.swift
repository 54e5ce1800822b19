import Foundation

/// A float32 tensor: a view (shape, strides in elements, offset) onto a reference-counted
/// `Storage`. Copying a `Tensor` value copies the view, not the data; views such as
/// `narrow(_:_:)` allocate nothing.
///
/// Layout. Activations are kept channel-major, `(C, N, H, W)`, not PyTorch's `(N, C, H, W)`:
/// then every channel prefix `[0, c)` of a dense block's feature buffer is one contiguous
/// `c × (N·H·W)` matrix, so the block buffer of the shared-storage DenseNet is sliced without
/// copies, a 1x1 convolution over any prefix is a single GEMM, and batch-norm statistics are
/// reductions over contiguous rows. Parameters keep PyTorch's shapes (`(Cout, Cin, kh, kw)`,
/// `(out, in)`), so checkpoints map one to one. See Papers/ for the measurement behind this.
public struct Tensor: @unchecked Sendable {
    public let storage: Storage
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int

    /// A new contiguous tensor with uninitialised contents.
    public init(shape: [Int], category: MemoryCategory = .activations) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        let count = Tensor.elementCount(shape)
        self.storage = Storage(count: count, category: category)
        self.shape = shape
        self.strides = Tensor.contiguousStrides(shape)
        self.offset = 0
    }

    /// A view onto an existing storage.
    public init(storage: Storage, shape: [Int], strides: [Int]? = nil, offset: Int = 0) {
        let strides = strides ?? Tensor.contiguousStrides(shape)
        precondition(strides.count == shape.count, "Tensor: strides \(strides) do not match shape \(shape)")
        if !shape.contains(0) {
            let last = offset + zip(shape, strides).map { ($0 - 1) * $1 }.reduce(0, +)
            precondition(offset >= 0 && last < storage.count,
                         "Tensor: view shape \(shape) strides \(strides) offset \(offset) exceeds storage of \(storage.count)")
        }
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A new contiguous tensor holding `values` (row-major in `shape`).
    public init(shape: [Int], values: [Float], category: MemoryCategory = .activations) {
        precondition(shape.reduce(1, *) == values.count,
                     "Tensor: \(values.count) values do not fill shape \(shape)")
        self.init(shape: shape, category: category)
        if isVirtual { return }
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { storage.base.update(from: s, count: values.count) }
        }
    }

    /// The product of `shape`, trapping with the shape on overflow (sizes from users and files
    /// are checked before they reach a tensor).
    public static func elementCount(_ shape: [Int]) -> Int {
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            precondition(!overflow, "Tensor: shape \(shape) has more elements than Int can count")
            count = product
        }
        return count
    }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            running *= shape[i]
        }
        return strides
    }

    // MARK: Properties

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var isContiguous: Bool { strides == Tensor.contiguousStrides(shape) || count <= 1 }
    /// Bytes this tensor's elements span (not its storage's).
    public var byteCount: Int { count * MemoryLayout<Float>.stride }
    /// Whether the storage is a dry run's, with no bytes behind it (`DryRun.swift`).
    public var isVirtual: Bool { storage.isVirtual }

    /// The address of element 0. The caller keeps `self` (and so its storage) alive while the
    /// pointer is used; kernels receive tensors as arguments, which guarantees that.
    @inlinable
    public var pointer: UnsafeMutablePointer<Float> { storage.base + offset }

    /// Runs `body` with the element-0 pointer, keeping the storage alive for its duration.
    @inlinable
    public func withPointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(storage.base + offset) }
    }

    /// Element 0 (a loss, a seed gradient); 0 in a dry run.
    public var scalar: Float { isVirtual || count == 0 ? 0 : pointer[0] }

    // MARK: Views (no allocation)

    /// The sub-range `range` of dimension `dim`, sharing storage.
    public func narrow(_ dim: Int, _ range: Range<Int>) -> Tensor {
        precondition(dim >= 0 && dim < rank, "narrow: dimension \(dim) out of range for shape \(shape)")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[dim],
                     "narrow: range \(range) out of bounds for dimension \(dim) of shape \(shape)")
        var newShape = shape
        newShape[dim] = range.count
        return Tensor(storage: storage, shape: newShape, strides: strides,
                      offset: offset + range.lowerBound * strides[dim])
    }

    /// Channels `range` of a channel-major `(C, ...)` tensor: contiguous when `self` is.
    public func channels(_ range: Range<Int>) -> Tensor { narrow(0, range) }

    /// The same elements in another shape (contiguous tensors only).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(isContiguous, "reshaped: tensor with shape \(shape) strides \(strides) is not contiguous")
        precondition(newShape.reduce(1, *) == count, "reshaped: \(shape) has \(count) elements, \(newShape) needs \(newShape.reduce(1, *))")
        return Tensor(storage: storage, shape: newShape, strides: nil, offset: offset)
    }

    // MARK: Element access (tests and small tensors)

    public func linearIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "index \(index) does not match shape \(shape)")
        var at = offset
        for (i, (ix, n)) in zip(index, shape).enumerated() {
            precondition(ix >= 0 && ix < n, "index \(index) out of bounds for shape \(shape)")
            at += ix * strides[i]
        }
        return at
    }

    public subscript(_ index: Int...) -> Float {
        get {
            precondition(!isVirtual, "Tensor \(shape): element read in a dry run")
            return storage.base[linearIndex(index)]
        }
        nonmutating set {
            precondition(!isVirtual, "Tensor \(shape): element write in a dry run")
            storage.base[linearIndex(index)] = newValue
        }
    }

    /// The elements in row-major order of `shape` (copies); zeros in a dry run.
    public var array: [Float] {
        if isVirtual { return [Float](repeating: 0, count: count) }
        if isContiguous {
            return Array(UnsafeBufferPointer(start: pointer, count: count))
        }
        var out = [Float]()
        out.reserveCapacity(count)
        forEachIndex { out.append(storage.base[$0]) }
        return out
    }

    /// Calls `body` with the storage index of every element, in row-major order.
    public func forEachIndex(_ body: (Int) -> Void) {
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: rank)
        for _ in 0..<count {
            var at = offset
            for d in 0..<rank { at += index[d] * strides[d] }
            body(at)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }

    // MARK: Whole-tensor operations

    /// A contiguous copy in a new storage.
    public func copy(category: MemoryCategory? = nil) -> Tensor {
        let out = Tensor(shape: shape, category: category ?? storage.category)
        out.assign(self)
        return out
    }

    /// Copies `source`'s elements into `self` (same shape; either may be strided).
    public func assign(_ source: Tensor) {
        let span = Profile.begin(.concatCopy); defer { Profile.end(span) }
        precondition(source.shape == shape, "assign: shape \(source.shape) into \(shape)")
        if isVirtual || source.isVirtual { return }
        if isContiguous && source.isContiguous {
            Parallel.copy(from: source.pointer, to: pointer, count: count)
            return
        }
        var values = [Int]()
        values.reserveCapacity(count)
        source.forEachIndex { values.append($0) }
        var i = 0
        forEachIndex { storage.base[$0] = source.storage.base[values[i]]; i += 1 }
    }

    public func fill(_ value: Float) {
        if isVirtual { return }
        if isContiguous {
            Parallel.fill(pointer, count: count, with: value)
        } else {
            forEachIndex { storage.base[$0] = value }
        }
    }

    public func zero() { fill(0) }

    public static func zeros(_ shape: [Int], category: MemoryCategory = .activations) -> Tensor {
        let t = Tensor(shape: shape, category: category)
        t.zero()
        return t
    }

    public static func filled(_ shape: [Int], _ value: Float, category: MemoryCategory = .activations) -> Tensor {
        let t = Tensor(shape: shape, category: category)
        t.fill(value)
        return t
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = array.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape)\(count > 8 ? ", [\(head), …]" : ", [\(head)]"))"
    }
}

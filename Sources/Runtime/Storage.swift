import Foundation

/// A reference-counted, 64-byte-aligned block of float32s, counted by `Memory` from
/// allocation to deinit. Tensors are views (shape, strides, offset) onto a storage.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    /// Elements.
    public let count: Int
    public let category: MemoryCategory
    /// The bytes counted for this storage (`Memory.byteCount(elements:)`).
    public let byteCount: Int

    /// Allocates `count` uninitialised floats through the process allocator (jemalloc).
    public init(count: Int, category: MemoryCategory) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        self.count = count
        self.category = category
        self.byteCount = Memory.byteCount(elements: count)
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, Memory.alignment, max(byteCount, Memory.alignment))
        guard status == 0, let raw else {
            fatalError("Storage: out of memory allocating \(Memory.format(byteCount)) for \(category)")
        }
        self.base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        Memory.didAllocate(byteCount, category)
    }

    deinit {
        free(base)
        Memory.didFree(byteCount, category)
    }
}

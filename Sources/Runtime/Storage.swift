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
    /// The real size of the block (a reused block from the cache may be larger).
    private let blockBytes: Int

    /// Allocates `count` uninitialised floats: a reused block of the same size from the buffer
    /// cache (`Memory+BufferCache.swift`) or a new one from the process allocator (jemalloc).
    public init(count: Int, category: MemoryCategory) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        self.count = count
        self.category = category
        self.byteCount = Memory.byteCount(elements: count)
        let block = Memory.allocate(byteCount, category)
        self.base = block.pointer.bindMemory(to: Float.self, capacity: max(count, 1))
        self.blockBytes = block.blockBytes
    }

    deinit {
        Memory.release(UnsafeMutableRawPointer(base), byteCount, blockBytes: blockBytes, category)
    }
}

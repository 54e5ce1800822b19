import Foundation

/// A reference-counted, 64-byte-aligned block of float32s, counted by `Memory` from
/// allocation to deinit. Tensors are views (shape, strides, offset) onto a storage.
///
/// Inside a dry run (`DryRun.swift`) a storage is virtual: counted in the dry run's ledger,
/// with no bytes behind it.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    /// Elements.
    public let count: Int
    public let category: MemoryCategory
    /// The bytes counted for this storage (`Memory.byteCount(elements:)`).
    public let byteCount: Int
    /// The real size of the block (a reused block from the cache may be larger).
    private let blockBytes: Int
    /// The ledger of the dry run that counted this storage; nil for a real block.
    private let dryRunLedger: MemoryLedger?

    /// Whether this storage was made in a dry run and has no bytes.
    public var isVirtual: Bool { dryRunLedger != nil }

    /// Allocates `count` uninitialised floats: a reused block of the same size from the buffer
    /// cache (`BufferCache.swift`) or a new one from the process allocator (jemalloc); in a dry
    /// run, only counts them.
    public init(count: Int, category: MemoryCategory) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        self.count = count
        self.category = category
        self.byteCount = Memory.byteCount(elements: count)
        if let dryRun = DryRun.current {
            dryRun.ledger.didAllocate(byteCount, category)
            self.dryRunLedger = dryRun.ledger
            self.base = DryRun.sentinel
            self.blockBytes = 0
            return
        }
        let span = Profile.begin(.allocation)
        let block = Memory.allocate(byteCount, category)
        Profile.end(span)
        self.dryRunLedger = nil
        self.base = block.pointer.bindMemory(to: Float.self, capacity: max(count, 1))
        self.blockBytes = block.blockBytes
    }

    deinit {
        if let dryRunLedger {
            dryRunLedger.didFree(byteCount, category)
        } else {
            let span = Profile.begin(.allocation)
            defer { Profile.end(span) }
            Memory.release(UnsafeMutableRawPointer(base), byteCount, blockBytes: blockBytes, category)
        }
    }
}

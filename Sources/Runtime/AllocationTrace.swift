import Foundation

/// A log of the runtime's storage allocations for replaying the buffer cache offline
/// (`Scripts/replay_buffer_cache.py`, issue 13): with `DENSENET_ALLOC_TRACE=<path>` every
/// allocation writes `A <bytes> <block address> hit|miss`, every release `F <bytes> <block
/// address>`, and `Memory.resetHighWater` (the cache starts over) writes `R`. Off (the default),
/// each allocation pays one load and a branch.
enum AllocationTrace {
    nonisolated(unsafe) static let file: UnsafeMutablePointer<FILE>? =
        ProcessInfo.processInfo.environment["DENSENET_ALLOC_TRACE"].flatMap { fopen($0, "w") }
    private static let lock = NSLock()

    static func write(_ file: UnsafeMutablePointer<FILE>, _ line: String) {
        lock.lock(); defer { lock.unlock() }
        fputs(line + "\n", file)
        fflush(file)
    }
}

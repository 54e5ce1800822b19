import CJemalloc
import CAllocatorConfig
import Foundation

/// What the operating system and the allocator say about this process's memory.
public enum ProcessProbe {
    /// Current resident set size (VmRSS), bytes.
    public static var residentBytes: Int { statusField("VmRSS") ?? 0 }

    /// Peak resident set size since start or the last `resetPeakResident()` (VmHWM), bytes.
    public static var peakResidentBytes: Int { statusField("VmHWM") ?? 0 }

    /// Resets VmHWM to the current RSS by writing 5 to /proc/self/clear_refs. Empties the
    /// runtime's buffer cache and purges the allocator first, so blocks and pages they kept
    /// do not count as the new baseline.
    /// With `purging: false` it resets VmHWM to the RSS as it is, cache and dirty pages
    /// included (for a peak measured in segments, where each segment's start is no baseline).
    @discardableResult
    public static func resetPeakResident(purging: Bool = true) -> Bool {
        if purging {
            Memory.releaseCachedBuffers()
            Jemalloc.purge()
        }
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)); return true } catch { return false }
    }

    /// Minor page faults of the process so far (getrusage; all threads).
    public static var minorPageFaults: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }

    /// A field of /proc/self/status in bytes ("VmHWM:   123456 kB").
    public static func statusField(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return statusField(name, in: text)
    }

    /// The field `name` of a /proc/<pid>/status text, in bytes. The kernel pads the number with
    /// spaces after a tab, and not at all from 8 digits on ("VmHWM:\t11612345 kB", ≥ 9.5 GiB),
    /// so both separators split.
    public static func statusField(_ name: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }
}

/// jemalloc's `mallctl` interface: it is the process allocator (linked without a prefix), so
/// these are the statistics of every malloc in the process, Swift runtime included.
public enum Jemalloc {
    /// Statistics are cached by jemalloc until the epoch is advanced.
    public static func refresh() {
        var newEpoch: UInt64 = 1
        _ = mallctl("epoch", nil, nil, &newEpoch, MemoryLayout<UInt64>.size)
    }

    /// A size_t statistic such as "stats.allocated", "stats.active", "stats.resident",
    /// "stats.mapped", "stats.retained" (after `refresh()`); nil if jemalloc does not know it.
    public static func statistic(_ name: String) -> Int? {
        var value: Int = 0
        var size = MemoryLayout<Int>.size
        let status = mallctl(name, &value, &size, nil, 0)
        return status == 0 ? value : nil
    }

    /// Refreshes and reads the main figures.
    public static func stats() -> (allocated: Int, active: Int, resident: Int, mapped: Int) {
        refresh()
        return (statistic("stats.allocated") ?? 0, statistic("stats.active") ?? 0,
                statistic("stats.resident") ?? 0, statistic("stats.mapped") ?? 0)
    }

    /// An ssize_t option such as "opt.dirty_decay_ms".
    public static func signedOption(_ name: String) -> Int? { statistic(name) }

    /// jemalloc's version string, or nil when jemalloc is not the allocator.
    public static var version: String? {
        var pointer: UnsafePointer<CChar>? = nil
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &pointer, &size, nil, 0) == 0, let pointer else { return nil }
        return String(cString: pointer)
    }

    /// The `malloc_conf` string compiled into this binary.
    public static var buildConfig: String { String(cString: dn_allocator_build_config()) }

    /// Returns all unused dirty pages of every arena to the system.
    public static func purge() {
        _ = mallctl("arena.4096.purge", nil, nil, nil, 0)
    }
}

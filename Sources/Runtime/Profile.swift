import Foundation

/// Where a training step's time goes, per operation class (issue 13, `bench-memory --profile`).
///
/// Kernel entry points open a span (`begin`) and close it (`end`). While profiling is off a span
/// costs one load and a branch. While it is on, only the thread that turned it on records (the
/// one running the model; our worker threads run inside its spans), and every span's time is
/// counted *exclusive* of the spans nested in it: a convolution's scratch allocation is
/// `allocation`, not convolution, so the classes add up to at most the step. Each span also
/// counts the process's minor page faults (all threads) that happened inside it.
///
/// `Parallel.forEach` reports its parallel regions: their wall time, and the thread-seconds the
/// threads sat idle in them (a region lasts as long as its slowest part), each also to the class
/// of the innermost open span: a class's time outside its parallel regions is its serial time,
/// which alone still takes as long on 16 cores. The serial share of a step is the part of its
/// wall time outside any parallel region.
///
/// Each region is also timed as it would run on cores of its own (`dedicatedParallelSeconds`):
/// as long as its longest part's CPU time on its thread, or its parts' total CPU time over the
/// threads if that is longer. With more threads than cores (`--threads 16` on 2 cores, the pool
/// not spinning) that estimates the step on as many dedicated cores, as far as the split of the
/// work limits it: memory bandwidth and caches shared by more cores are not in it.
public enum Profile {
    /// The operation classes.
    public enum Operation: Int, CaseIterable, Sendable {
        case conv1x1Forward, conv1x1Backward, conv3x3Forward, conv3x3Backward, convOtherForward, convOtherBackward
        case batchNormReLU, concatCopy, pooling, loss, linear, elementwise, optimizer, allocation

        public var name: String {
            switch self {
            case .conv1x1Forward: return "conv 1x1 forward"
            case .conv1x1Backward: return "conv 1x1 backward"
            case .conv3x3Forward: return "conv 3x3 forward"
            case .conv3x3Backward: return "conv 3x3 backward"
            case .convOtherForward: return "conv other forward"
            case .convOtherBackward: return "conv other backward"
            case .batchNormReLU: return "batch norm + ReLU"
            case .concatCopy: return "concat / copies"
            case .pooling: return "pooling"
            case .loss: return "loss"
            case .linear: return "linear"
            case .elementwise: return "elementwise / dropout"
            case .optimizer: return "optimizer"
            case .allocation: return "allocation"
            }
        }
    }

    /// What one operation class took.
    public struct Entry: Codable, Sendable, Equatable {
        public var operation: String
        public var seconds: Double
        public var calls: Int
        public var pageFaults: Int
        /// Wall seconds of the class's own time inside parallel regions, and the thread-seconds
        /// threads sat idle in them (nil in records written before they were counted).
        public var parallelSeconds: Double?
        public var idleThreadSeconds: Double?
        /// The class's parallel regions with fewer parts than threads: loops that leave threads
        /// idle however fast the parts run (how a loop splits, counted exactly even where the
        /// machine has fewer cores than `--threads`).
        public var narrowRegions: Int?
        /// The class's parallel regions, each timed as on `threads` dedicated cores (Profile's
        /// doc), seconds (nil in records written before it was counted).
        public var dedicatedParallelSeconds: Double?

        /// The class's time outside parallel regions: what more threads cannot shorten.
        public var serialSeconds: Double { max(0, seconds - (parallelSeconds ?? 0)) }

        /// The class's time on `threads` dedicated cores: its serial time and its regions each as
        /// long as their longest part's CPU time (nil without the regions' estimate).
        public var dedicatedSeconds: Double? { dedicatedParallelSeconds.map { serialSeconds + $0 } }
    }

    /// The totals since `start()`.
    public struct Report: Codable, Sendable {
        public var entries: [Entry]
        /// Wall seconds inside parallel regions (Parallel.forEach with more than one part).
        public var parallelSeconds: Double
        /// Thread-seconds threads sat idle inside parallel regions, waiting for the slowest part.
        public var idleThreadSeconds: Double
        public var parallelRegions: Int
        /// Of `parallelSeconds` and `idleThreadSeconds`, the parts of regions run outside any span.
        public var unattributedParallelSeconds: Double?
        public var unattributedIdleThreadSeconds: Double?
        /// The regions' time on dedicated cores (Profile's doc), all of them and those outside any span.
        public var dedicatedParallelSeconds: Double?
        public var unattributedDedicatedParallelSeconds: Double?
    }

    /// A span opened by `begin`; `none` when nothing is recorded.
    public struct Span {
        @usableFromInline let depth: Int
        @usableFromInline init(depth: Int) { self.depth = depth }
        @usableFromInline static let none = Span(depth: -1)
    }

    @usableFromInline nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var owner = pthread_self()
    nonisolated(unsafe) static var seconds = [Double](repeating: 0, count: Operation.allCases.count)
    nonisolated(unsafe) static var calls = [Int](repeating: 0, count: Operation.allCases.count)
    nonisolated(unsafe) static var faults = [Int](repeating: 0, count: Operation.allCases.count)
    nonisolated(unsafe) static var parallelSeconds = 0.0
    nonisolated(unsafe) static var idleThreadSeconds = 0.0
    nonisolated(unsafe) static var parallelRegions = 0
    // Per class (and, last, outside any span): parallel wall seconds and idle thread-seconds.
    nonisolated(unsafe) static var classParallel = [Double](repeating: 0, count: Operation.allCases.count + 1)
    nonisolated(unsafe) static var classIdle = [Double](repeating: 0, count: Operation.allCases.count + 1)
    nonisolated(unsafe) static var classNarrow = [Int](repeating: 0, count: Operation.allCases.count + 1)
    nonisolated(unsafe) static var classDedicated = [Double](repeating: 0, count: Operation.allCases.count + 1)
    // While the recording thread runs parts of a parallel region: the regions open, and the
    // exclusive time of the spans closed inside them (parallel time of their own classes).
    nonisolated(unsafe) static var regionDepth = 0
    nonisolated(unsafe) static var regionSpanNs: UInt64 = 0
    // The open spans: operation, start (ns), faults at start, time and faults of nested spans.
    static let maxDepth = 64
    nonisolated(unsafe) static var stack = [(op: Int, start: UInt64, faults: Int, childNs: UInt64, childFaults: Int)](
        repeating: (0, 0, 0, 0, 0), count: maxDepth)
    nonisolated(unsafe) static var depth = 0

    /// Whether profiling is on.
    public static var isEnabled: Bool { enabled }

    /// Clears the totals and starts recording on the calling thread.
    public static func start() {
        for i in seconds.indices { seconds[i] = 0; calls[i] = 0; faults[i] = 0 }
        for i in classParallel.indices { classParallel[i] = 0; classIdle[i] = 0; classNarrow[i] = 0; classDedicated[i] = 0 }
        regionDepth = 0; regionSpanNs = 0
        parallelSeconds = 0; idleThreadSeconds = 0; parallelRegions = 0; depth = 0
        owner = pthread_self()
        enabled = true
    }

    /// Stops recording and returns the totals.
    @discardableResult
    public static func stop() -> Report {
        enabled = false
        let entries = Operation.allCases.map {
            Entry(operation: $0.name, seconds: seconds[$0.rawValue], calls: calls[$0.rawValue], pageFaults: faults[$0.rawValue],
                  parallelSeconds: classParallel[$0.rawValue], idleThreadSeconds: classIdle[$0.rawValue],
                  narrowRegions: classNarrow[$0.rawValue], dedicatedParallelSeconds: classDedicated[$0.rawValue])
        }
        let outside = Operation.allCases.count
        return Report(entries: entries, parallelSeconds: parallelSeconds, idleThreadSeconds: idleThreadSeconds,
                      parallelRegions: parallelRegions, unattributedParallelSeconds: classParallel[outside],
                      unattributedIdleThreadSeconds: classIdle[outside],
                      dedicatedParallelSeconds: classDedicated.reduce(0, +),
                      unattributedDedicatedParallelSeconds: classDedicated[outside])
    }

    /// Whether the calling thread records now.
    @inlinable
    public static var isRecording: Bool { enabled && isOwner }

    @usableFromInline
    static var isOwner: Bool { pthread_equal(pthread_self(), owner) != 0 }

    /// Opens a span of `operation`. Pair with `end` (`defer { Profile.end(span) }`).
    @inlinable @inline(__always)
    public static func begin(_ operation: Operation) -> Span {
        guard enabled else { return .none }
        return beginRecording(operation)
    }

    /// Closes a span opened by `begin`.
    @inlinable @inline(__always)
    public static func end(_ span: Span) {
        if span.depth >= 0 { endRecording(span) }
    }

    @usableFromInline
    static func beginRecording(_ operation: Operation) -> Span {
        guard isOwner, depth < maxDepth else { return .none }
        // A span inside one of its own class (batch norm's per-channel tile calls inside its
        // backward) is part of it: recording it cost two clock reads and two getrusage calls per
        // channel on the recording thread alone, which showed as waiting of the other threads.
        if depth > 0 && stack[depth - 1].op == operation.rawValue { return .none }
        stack[depth] = (operation.rawValue, DispatchTime.now().uptimeNanoseconds, minorFaults(), 0, 0)
        depth += 1
        return Span(depth: depth - 1)
    }

    @usableFromInline
    static func endRecording(_ span: Span) {
        guard isOwner, span.depth == depth - 1 else { return }
        let top = stack[span.depth]
        let elapsed = DispatchTime.now().uptimeNanoseconds - top.start
        let faulted = minorFaults() - top.faults
        depth -= 1
        let exclusive = elapsed - min(top.childNs, elapsed)
        seconds[top.op] += Double(exclusive) * 1e-9
        if regionDepth > 0 {
            classParallel[top.op] += Double(exclusive) * 1e-9
            regionSpanNs += exclusive
        }
        faults[top.op] += faulted - top.childFaults
        calls[top.op] += 1
        if depth > 0 {
            stack[depth - 1].childNs += elapsed
            stack[depth - 1].childFaults += faulted
        }
    }

    /// Called by `Parallel.forEach` on the recording thread as a region starts; returns what
    /// `recordParallelRegion` needs back, or nil inside another region (whose wall time already
    /// covers this one's).
    static func enterParallelRegion() -> UInt64? {
        regionDepth += 1
        return regionDepth == 1 ? regionSpanNs : nil
    }

    /// Called by `Parallel.forEach` after a region that took `wall` seconds on `threads`
    /// threads, its parts `busy` thread-seconds together; `entered` is what
    /// `enterParallelRegion` returned. The region's wall time, less the spans the recording
    /// thread ran inside it (parallel time of their own classes), is parallel time of the class
    /// of the innermost open span, and so are the idle thread-seconds and `dedicated`, the
    /// region's time on dedicated cores; `narrow`: it had fewer parts than threads.
    static func recordParallelRegion(wall: Double, busy: Double, threads: Int, narrow: Bool, dedicated: Double,
                                     entered: UInt64?) {
        regionDepth -= 1
        guard let spanNsBefore = entered else { return }
        let idle = max(0, wall * Double(threads) - busy)
        parallelSeconds += wall
        idleThreadSeconds += idle
        parallelRegions += 1
        let nested = Double(regionSpanNs - spanNsBefore) * 1e-9
        let owner = depth > 0 ? stack[depth - 1].op : Operation.allCases.count
        classParallel[owner] += max(0, wall - nested)
        classIdle[owner] += idle
        if narrow { classNarrow[owner] += 1 }
        classDedicated[owner] += dedicated
    }

    static func minorFaults() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }
}

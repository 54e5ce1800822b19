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
/// threads sat idle in them (a region lasts as long as its slowest part). The serial share of a
/// step is the part of its wall time outside any parallel region.
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
    }

    /// The totals since `start()`.
    public struct Report: Codable, Sendable {
        public var entries: [Entry]
        /// Wall seconds inside parallel regions (Parallel.forEach with more than one part).
        public var parallelSeconds: Double
        /// Thread-seconds threads sat idle inside parallel regions, waiting for the slowest part.
        public var idleThreadSeconds: Double
        public var parallelRegions: Int
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
        parallelSeconds = 0; idleThreadSeconds = 0; parallelRegions = 0; depth = 0
        owner = pthread_self()
        enabled = true
    }

    /// Stops recording and returns the totals.
    @discardableResult
    public static func stop() -> Report {
        enabled = false
        let entries = Operation.allCases.map {
            Entry(operation: $0.name, seconds: seconds[$0.rawValue], calls: calls[$0.rawValue], pageFaults: faults[$0.rawValue])
        }
        return Report(entries: entries, parallelSeconds: parallelSeconds, idleThreadSeconds: idleThreadSeconds,
                      parallelRegions: parallelRegions)
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
        seconds[top.op] += Double(elapsed - min(top.childNs, elapsed)) * 1e-9
        faults[top.op] += faulted - top.childFaults
        calls[top.op] += 1
        if depth > 0 {
            stack[depth - 1].childNs += elapsed
            stack[depth - 1].childFaults += faulted
        }
    }

    /// Called by `Parallel.forEach` after a region of `parts` parts on `threads` threads that
    /// took `wall` seconds, its parts `busy` thread-seconds together.
    static func recordParallelRegion(wall: Double, busy: Double, threads: Int) {
        parallelSeconds += wall
        idleThreadSeconds += max(0, wall * Double(threads) - busy)
        parallelRegions += 1
    }

    static func minorFaults() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_minflt
    }
}

import Foundation

/// A size computed from numbers that a user typed or a file holds that cannot be what it says:
/// negative, overflowing 64 bits, not a whole number, or beyond a bound such as the machine's
/// physical memory. `what` names the option or field the numbers came from (`--batch`,
/// `training_progress.loader.position`, `model_configuration.input`), so the message tells
/// the user which of their numbers to change.
public enum SizeError: Error, Equatable, CustomStringConvertible {
    /// `expression` (e.g. "1 × 4611686018427387904 × 2") does not fit in a 64-bit integer.
    case overflow(what: String, expression: String)
    case negative(what: String, value: Int)
    /// A floating-point value that is not a finite whole number in `Int`'s range.
    case notRepresentable(what: String, value: String)
    /// A value beyond a bound: `limit` and what the bound is (e.g. "this machine's physical memory").
    case tooLarge(what: String, value: Int, limit: Int, bound: String)

    public var what: String {
        switch self {
        case .overflow(let w, _), .negative(let w, _), .notRepresentable(let w, _), .tooLarge(let w, _, _, _): return w
        }
    }

    public var description: String {
        switch self {
        case .overflow(let what, let expression):
            return "\(what): \(expression) overflows 64-bit arithmetic; give a smaller value"
        case .negative(let what, let value):
            return "\(what): \(value) is negative; it must be 0 or more"
        case .notRepresentable(let what, let value):
            return "\(what): \(value) is not a whole number in 0...\(Int.max); give a smaller value"
        case .tooLarge(let what, let value, let limit, let bound):
            return "\(what): \(value) is more than \(limit), \(bound); give a smaller value"
        }
    }
}

/// Size arithmetic on untrusted numbers, in one place: every product, sum, element-to-byte
/// conversion and ceiling division of a value from the command line or from a file goes through
/// here, so that an absurd value is a `SizeError` naming it instead of Swift's overflow trap
/// (a crash with no message). Results are never negative.
public enum CheckedSize {
    /// `value`, refused when negative.
    public static func nonNegative(_ value: Int, what: String) throws -> Int {
        guard value >= 0 else { throw SizeError.negative(what: what, value: value) }
        return value
    }

    /// The product of non-negative `factors` (1 for none), e.g. a shape's element count.
    public static func product(_ factors: [Int], what: String) throws -> Int {
        var result = 1
        for f in factors {
            guard f >= 0 else { throw SizeError.negative(what: what, value: f) }
        }
        for f in factors {
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            if overflow { throw SizeError.overflow(what: what, expression: expression(factors, "×")) }
            result = p
        }
        return result
    }

    /// `a × b` for non-negative values.
    public static func product(_ a: Int, _ b: Int, what: String) throws -> Int {
        try product([a, b], what: what)
    }

    /// The sum of non-negative `terms` (0 for none).
    public static func sum(_ terms: [Int], what: String) throws -> Int {
        var result = 0
        for t in terms {
            guard t >= 0 else { throw SizeError.negative(what: what, value: t) }
            let (s, overflow) = result.addingReportingOverflow(t)
            if overflow { throw SizeError.overflow(what: what, expression: expression(terms, "+")) }
            result = s
        }
        return result
    }

    /// `a + b` for non-negative values.
    public static func sum(_ a: Int, _ b: Int, what: String) throws -> Int {
        try sum([a, b], what: what)
    }

    /// Bytes of `elements` values of `elementSize` bytes each (4 for F32).
    public static func bytes(elements: Int, elementSize: Int = 4, what: String) throws -> Int {
        try product([elements, elementSize], what: what)
    }

    /// Bytes of a tensor of `shape` with `elementSize`-byte elements.
    public static func bytes(shape: [Int], elementSize: Int = 4, what: String) throws -> Int {
        try product(shape + [elementSize], what: what)
    }

    /// ⌈a / b⌉ for `a ≥ 0`, `b ≥ 1`, without forming `a + b − 1` (which overflows for
    /// `b = Int.max`), e.g. batches per epoch.
    public static func ceilingDivision(_ a: Int, by b: Int, what: String) throws -> Int {
        guard a >= 0 else { throw SizeError.negative(what: what, value: a) }
        guard b >= 1 else { throw SizeError.negative(what: what, value: b) }
        return a / b + (a % b == 0 ? 0 : 1)
    }

    /// ⌈a / b⌉ for `a ≥ 0`, `b ≥ 1`, for callers that have already checked both (no throw).
    public static func ceilingDivision(_ a: Int, by b: Int) -> Int {
        precondition(a >= 0 && b >= 1, "CheckedSize.ceilingDivision: \(a) / \(b)")
        return a / b + (a % b == 0 ? 0 : 1)
    }

    /// `value` when it is at most `limit`; `bound` says what the limit is, for the message.
    @discardableResult
    public static func atMost(_ value: Int, _ limit: Int, what: String, bound: String) throws -> Int {
        guard value >= 0 else { throw SizeError.negative(what: what, value: value) }
        guard value <= limit else { throw SizeError.tooLarge(what: what, value: value, limit: limit, bound: bound) }
        return value
    }

    /// A non-negative `Double` (e.g. "1.5G" scaled to bytes, or `1e30`) as an `Int`, rounded
    /// down; refused when NaN, infinite, negative or at least 2^63 (where `Int(_:)` traps).
    public static func integer(_ value: Double, what: String) throws -> Int {
        // 2^63 is exactly representable; every Double below it converts without trapping.
        guard value.isFinite, value >= 0, value < 9_223_372_036_854_775_808.0 else {
            throw SizeError.notRepresentable(what: what, value: "\(value)")
        }
        return Int(value.rounded(.down))
    }

    /// This machine's physical memory in bytes (`ProcessInfo.physicalMemory`), the bound beyond
    /// which nothing sized from a file or option can be allocated.
    public static var physicalMemoryBytes: Int {
        let bytes = ProcessInfo.processInfo.physicalMemory
        return bytes > UInt64(Int.max) ? Int.max : Int(bytes)
    }

    /// `bytes` when it fits in physical memory.
    @discardableResult
    public static func fitsInMemory(_ bytes: Int, what: String) throws -> Int {
        try atMost(bytes, physicalMemoryBytes, what: what, bound: "this machine's physical memory in bytes")
    }

    static func expression(_ values: [Int], _ op: String) -> String {
        let shown = values.count > 8 ? values.prefix(8).map(String.init) + ["…"] : values.map(String.init)
        return shown.joined(separator: " \(op) ")
    }
}

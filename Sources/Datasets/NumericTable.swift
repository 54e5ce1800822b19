import Foundation

/// A numeric table from a CSV (or other delimited) file, e.g. scikit-learn's diabetes data:
/// an optional header line of column names, then rows of numbers, all the same width.
/// Quoting is not supported (numeric tables have no need of it); a quote is reported as a
/// non-numeric cell.
public struct NumericTable: Sendable, Equatable {
    public var columnNames: [String]
    /// Row-major values, `rowCount × columnCount`.
    public var values: [Double]
    public var rowCount: Int
    public var columnCount: Int { columnNames.count }

    public subscript(row: Int, column: Int) -> Double { values[row * columnCount + column] }

    /// One column's values.
    public func column(_ index: Int) -> [Double] { (0..<rowCount).map { self[$0, index] } }

    /// One column by name, or nil.
    public func column(named name: String) -> [Double]? { columnNames.firstIndex(of: name).map(column) }

    /// Reads a table (gzip'd when its name ends in ".gz"). With `hasHeader` false the columns
    /// are named "0", "1", …. Blank lines and lines starting with `#` are skipped.
    /// The largest table read (after decompression): 1 GiB of text.
    public static let maxFileBytes = 1 << 30

    public static func read(_ path: String, delimiter: Character = ",", hasHeader: Bool = true,
                            limit: SizeLimit = .atMost(maxFileBytes)) throws -> NumericTable {
        let bytes = try FileBytes.read(path, missingHint: "Check the path.", limit: limit)
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw DatasetError.badTable(path: path, line: 1, reason: "not UTF-8 text")
        }
        return try parse(text, path: path, delimiter: delimiter, hasHeader: hasHeader)
    }

    public static func parse(_ text: String, path: String = "<memory>", delimiter: Character = ",",
                             hasHeader: Bool = true) throws -> NumericTable {
        var names: [String]? = nil
        var values = [Double]()
        var rows = 0
        var lineNumber = 0
        // "\r\n" is one Character in Swift, and a newline: split on `isNewline`, not on "\n".
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let cells = line.split(separator: delimiter, omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if names == nil && hasHeader {
                names = cells
                continue
            }
            if names == nil { names = (0..<cells.count).map(String.init) }
            guard cells.count == names!.count else {
                throw DatasetError.badTable(path: path, line: lineNumber,
                                            reason: "\(cells.count) cells, expected \(names!.count) like the \(hasHeader ? "header" : "first row")")
            }
            for (column, cell) in cells.enumerated() {
                guard let v = Double(cell), v.isFinite else {
                    throw DatasetError.badTable(path: path, line: lineNumber,
                                                reason: "cell \(column + 1) (\(names![column])) is '\(cell)', not a finite number")
                }
                values.append(v)
            }
            rows += 1
        }
        guard let columnNames = names else {
            throw DatasetError.badTable(path: path, line: lineNumber, reason: "the table is empty")
        }
        return NumericTable(columnNames: columnNames, values: values, rowCount: rows)
    }
}

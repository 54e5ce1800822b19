import ArgumentParser
import Foundation
import Training

/// `--out DIR`: the folder a command writes its files to. Shared by `densenet train` (the run's
/// folder) and `bench-memory` (its reports); each says its default in its discussion.
public struct OutputFolderOptions: ParsableArguments {
    @Option(help: "The folder the files are written to (default: in the discussion above).")
    public var out: String?

    public init() {}

    /// `--out`, else `fallback()`.
    public func folder(_ fallback: () -> String) -> String { out ?? fallback() }

    /// `folder(fallback)`, checked before the work starts (`OutputLocation.checkFolder`).
    public func checkedFolder(_ fallback: () -> String) throws -> String {
        let path = folder(fallback)
        try OutputLocation.checkFolder(path, option: out == nil ? "the output folder (--out)" : "--out")
        return path
    }
}

/// `--json`: one JSON document on standard output instead of text. Shared by `densenet summary`,
/// `densenet evaluate` and `bench-memory`.
public struct JSONOutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON document on standard output instead of text.")
    public var json = false

    public init() {}
}

/// Where a command will write, checked before its work starts (issue 11, class 9): a folder
/// that cannot be created (a file in the way, a parent without write permission) or a file
/// that cannot be written is refused at once, worded as the other option errors
/// (`TrainingError.invalidOption`), instead of a Foundation error dump after minutes of work.
/// Nothing is created here: the command creates its folder when it writes.
public enum OutputLocation {
    /// Refuses `path` as a folder to write into: an existing path must be a writable folder; a
    /// new one needs its nearest existing ancestor to be a writable folder.
    public static func checkFolder(_ path: String, option: String) throws {
        guard !path.isEmpty else { throw TrainingError.invalidOption(option, reason: "the folder's path is empty") }
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw TrainingError.invalidOption(option, reason: "'\(path)' is a file, not a folder: give a folder to write into")
            }
            guard access(path, W_OK | X_OK) == 0 else {
                throw TrainingError.invalidOption(option, reason: "the folder '\(path)' is not writable (\(String(cString: strerror(errno))));"
                                                  + " choose another folder or change its permissions")
            }
            return
        }
        try checkAncestor(of: path, option: option, creating: "the folder '\(path)'")
    }

    /// Refuses `path` as a file to write: an existing path must be a writable regular file, and
    /// its folder must exist and be writable (the file is replaced through a temporary file
    /// next to it; the writers do not create folders).
    public static func checkFile(_ path: String, option: String) throws {
        guard !path.isEmpty else { throw TrainingError.invalidOption(option, reason: "the file's path is empty") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                throw TrainingError.invalidOption(option, reason: "'\(path)' is a folder: give a file name to write")
            }
            guard access(path, W_OK) == 0 else {
                throw TrainingError.invalidOption(option, reason: "the file '\(path)' is not writable (\(String(cString: strerror(errno))))")
            }
        }
        var parent = (path as NSString).deletingLastPathComponent
        if parent.isEmpty { parent = "." }
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw TrainingError.invalidOption(option, reason: "cannot write '\(path)': the folder '\(parent)' does not exist; create it first")
        }
        guard isDirectory.boolValue else {
            throw TrainingError.invalidOption(option, reason: "cannot write '\(path)': '\(parent)' is a file, not a folder")
        }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw TrainingError.invalidOption(option, reason: "cannot write '\(path)': the folder '\(parent)' is not writable"
                                              + " (\(String(cString: strerror(errno))))")
        }
    }

    /// The nearest existing ancestor of a path to be created must be a folder we may write in.
    private static func checkAncestor(of path: String, option: String, creating what: String) throws {
        let fm = FileManager.default
        var ancestor = (path as NSString).deletingLastPathComponent
        while !ancestor.isEmpty, ancestor != "/", !fm.fileExists(atPath: ancestor) {
            ancestor = (ancestor as NSString).deletingLastPathComponent
        }
        if ancestor.isEmpty { ancestor = "." }
        var isDirectory: ObjCBool = false
        _ = fm.fileExists(atPath: ancestor, isDirectory: &isDirectory)
        guard isDirectory.boolValue else {
            throw TrainingError.invalidOption(option, reason: "cannot create \(what): '\(ancestor)' is a file, not a folder")
        }
        guard access(ancestor, W_OK | X_OK) == 0 else {
            throw TrainingError.invalidOption(option, reason: "cannot create \(what): the folder '\(ancestor)' is not writable"
                                              + " (\(String(cString: strerror(errno)))); choose another place")
        }
    }
}

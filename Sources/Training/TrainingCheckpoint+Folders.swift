import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime

/// A run's checkpoints as whole folders, so that a save is atomic as a whole: a kill at any
/// moment leaves every earlier complete checkpoint as it was, and never a model file from one
/// save next to a training state from another.
///
/// ```
/// run/
///   checkpoints/
///     000002-step-12/   model.safetensors  training-state.safetensors   (the previous one)
///     000003-step-18/   model.safetensors  training-state.safetensors   (the newest)
///   model.safetensors          -> checkpoints/000003-step-18/model.safetensors
///   training-state.safetensors -> checkpoints/000003-step-18/training-state.safetensors
/// ```
///
/// A save writes both files into `checkpoints/.partial-<sequence>-<pid>`, fsyncs them and the
/// folder, renames the folder to `<sequence>-step-<global step>` (rename(2) is atomic; a name
/// without a leading dot is therefore always a complete checkpoint), fsyncs `checkpoints/`,
/// then points the two symbolic links in the run folder at it (each replaced by a rename, for
/// `densenet evaluate --checkpoint run` and PyTorch's `load_file`) and only then retires older
/// checkpoints beyond `keptCheckpoints` (renamed to `.trash-…` first, then deleted). What an
/// interrupted save leaves (`.partial-*`, `.trash-*`, `AtomicFile` temporaries of processes that
/// are gone) is removed at the next start (`removeInterruptedSaves`).
///
/// Run folders of the earlier layout (model.safetensors and training-state.safetensors as
/// regular files in the run folder) still resume; their first new save links the old pair into
/// `checkpoints/` before anything replaces it.
extension TrainingCheckpoint {
    public static let foldersName = "checkpoints"
    /// Complete checkpoints kept: the newest and the one before it (a fallback).
    public static let keptCheckpoints = 2

    /// One complete checkpoint: its two files and the run folder it belongs to.
    public struct Location: Equatable, Sendable, CustomStringConvertible {
        public var run: String
        public var model: String
        public var state: String
        /// The checkpoint folder's name ("000003-step-18"), or "run folder (earlier layout)".
        public var name: String
        /// The save's sequence number (0 for the earlier layout).
        public var sequence: Int
        public var description: String { name }
    }

    // MARK: Saving

    /// Saves the weights and the optimizer with `progress` as a new complete checkpoint of the
    /// run folder `directory` (see the type's note); returns where. A state with a NaN or
    /// infinity is refused before anything is written (`checkFinite`). `classNames` (the data
    /// set's, by label) go into the metadata as `class_names` (`densenet predict` reads them).
    @discardableResult
    public static func save(directory: String, model: any Network, optimizer: any Optimizer,
                            progress: TrainingProgress, classNames: [String] = []) throws -> Location {
        try checkFinite(model: model, optimizer: optimizer, progress: progress)
        let folders = path(directory, foldersName)
        do {
            try FileManager.default.createDirectory(atPath: folders, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.writeFailed(path: folders, reason: "cannot create the checkpoints folder: \(error)")
        }
        try adoptEarlierLayout(run: directory)
        let sequence = (completeCheckpoints(inRun: directory).map(\.sequence).max() ?? 0) + 1
        let partial = path(folders, ".partial-\(sequence)-\(getpid())")
        try? FileManager.default.removeItem(atPath: partial)
        guard mkdir(partial, 0o755) == 0 else {
            throw CheckpointError.writeFailed(path: partial, reason: String(cString: strerror(errno)))
        }
        do {
            try writePair(directory: partial, model: model, optimizer: optimizer, progress: progress,
                          classNames: classNames)
            AtomicFile.syncDirectory(partial)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        let name = String(format: "%06d-step-%d", sequence, progress.globalStep)
        let final = path(folders, name)
        guard rename(partial, final) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: partial)
            throw CheckpointError.writeFailed(path: final, reason: "rename of the completed checkpoint folder: \(reason)")
        }
        AtomicFile.syncDirectory(folders)
        let location = Location(run: directory, model: path(final, modelFileName), state: path(final, stateFileName),
                                name: name, sequence: sequence)
        for file in [modelFileName, stateFileName] {
            try replaceWithLink(path(directory, file), target: "\(foldersName)/\(name)/\(file)")
        }
        AtomicFile.syncDirectory(directory)
        retireOldCheckpoints(inRun: directory)
        return location
    }

    /// `path` becomes a symbolic link to `target` (relative), replacing what was there by a rename.
    static func replaceWithLink(_ linkPath: String, target: String) throws {
        let temporary = "\(linkPath).link-tmp-\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0, rename(temporary, linkPath) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CheckpointError.writeFailed(path: linkPath, reason: "cannot link it to \(target): \(reason)")
        }
    }

    /// Checkpoints beyond `keptCheckpoints`, oldest first, renamed out of the complete set and deleted.
    static func retireOldCheckpoints(inRun run: String) {
        let folders = path(run, foldersName)
        for old in completeCheckpoints(inRun: run).dropFirst(keptCheckpoints) {
            let trash = path(folders, ".trash-\(old.name)-\(getpid())")
            if rename(path(folders, old.name), trash) == 0 { try? FileManager.default.removeItem(atPath: trash) }
        }
    }

    /// A run folder of the earlier layout (two regular files, no checkpoint folder yet): its
    /// pair is hard-linked (copied where links fail) into a complete checkpoint folder, so
    /// that replacing the files by links keeps it.
    static func adoptEarlierLayout(run: String) throws {
        let model = path(run, modelFileName), state = path(run, stateFileName)
        guard completeCheckpoints(inRun: run).isEmpty, isRegularFile(model, followingLinks: false),
              isRegularFile(state, followingLinks: false),
              let progress = try? readProgress(model: model, state: state) else { return }
        let folders = path(run, foldersName)
        let partial = path(folders, ".partial-0-\(getpid())")
        try? FileManager.default.removeItem(atPath: partial)
        do {
            try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
            for (source, name) in [(model, modelFileName), (state, stateFileName)] {
                let destination = path(partial, name)
                if link(source, destination) != 0 { try FileManager.default.copyItem(atPath: source, toPath: destination) }
            }
            AtomicFile.syncDirectory(partial)
            let final = path(folders, String(format: "%06d-step-%d", 0, progress.globalStep))
            guard rename(partial, final) == 0 else { throw CheckpointError.writeFailed(path: final, reason: String(cString: strerror(errno))) }
            AtomicFile.syncDirectory(folders)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw CheckpointError.writeFailed(path: folders, reason: "cannot keep the earlier checkpoint pair: \(error)")
        }
    }

    // MARK: Finding

    /// The complete checkpoints of a run folder, newest (highest sequence) first.
    public static func completeCheckpoints(inRun run: String) -> [Location] {
        let folders = path(run, foldersName)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folders)) ?? []
        return names.compactMap { name -> Location? in
            guard let sequence = sequenceNumber(name) else { return nil }
            let directory = path(folders, name)
            return Location(run: run, model: path(directory, modelFileName), state: path(directory, stateFileName),
                            name: name, sequence: sequence)
        }.sorted { $0.sequence > $1.sequence }
    }

    /// `000003-step-18` → 3; nil for any other name (temporaries start with a dot).
    static func sequenceNumber(_ name: String) -> Int? {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1] == "step", parts[0].count >= 6, parts[0].allSatisfy(\.isASCII),
              let sequence = Int(parts[0]), sequence >= 0, Int(parts[2]) != nil else { return nil }
        return sequence
    }

    /// Where `--resume path` may continue from, best first: a run folder's complete checkpoints
    /// (newest first), then its earlier-layout pair; a checkpoint folder, or a file in one, is
    /// that checkpoint alone. A file in a run folder stands for the run folder.
    public static func resumeCandidates(_ resume: String) throws -> [Location] {
        guard let mode = RegularFile.kind(of: resume) else { throw TrainingError.noCheckpoint(path: resume) }
        guard mode == S_IFDIR || mode == S_IFREG else {
            throw CheckpointError.notRegularFile(path: resume, kind: RegularFile.kindName(mode))
        }
        let directory = mode == S_IFDIR ? resume : (resume as NSString).deletingLastPathComponent
        let parent = (directory as NSString).deletingLastPathComponent
        if (parent as NSString).lastPathComponent == foldersName, let sequence = sequenceNumber((directory as NSString).lastPathComponent) {
            return [Location(run: (parent as NSString).deletingLastPathComponent, model: path(directory, modelFileName),
                             state: path(directory, stateFileName), name: (directory as NSString).lastPathComponent,
                             sequence: sequence)]
        }
        var candidates = completeCheckpoints(inRun: directory)
        let model = path(directory, modelFileName), state = path(directory, stateFileName)
        if isRegularFile(model, followingLinks: false) || isRegularFile(state, followingLinks: false) {
            candidates.append(Location(run: directory, model: model, state: state, name: "run folder (earlier layout)",
                                       sequence: 0))
        }
        guard !candidates.isEmpty else { throw TrainingError.noCheckpoint(path: resume) }
        return candidates
    }

    /// The two files of the newest complete checkpoint given a run folder, a checkpoint folder
    /// or a checkpoint file (no fallback; `TrainingRun` falls back).
    public static func locate(_ resume: String) throws -> (model: String, state: String) {
        let best = try resumeCandidates(resume)[0]
        return (best.model, best.state)
    }

    // MARK: Cleaning up

    /// Renames a damaged checkpoint folder to `damaged-NAME` beside it: out of the complete set
    /// (so it is neither resumed nor counted among the kept ones), but not deleted. Returns the
    /// new path, or nil when it is not a checkpoint folder or the rename fails.
    @discardableResult
    public static func setAside(_ location: Location) -> String? {
        let folders = path(location.run, foldersName)
        guard sequenceNumber(location.name) != nil else { return nil }
        let aside = path(folders, "damaged-\(location.name)")
        return rename(path(folders, location.name), aside) == 0 ? aside : nil
    }

    /// Removes what interrupted saves left in a run folder: `.partial-*` and `.trash-*` folders
    /// and dangling link temporaries in `checkpoints/`, and `AtomicFile` temporaries
    /// (`.NAME.tmp-PID-N`) of processes that no longer run; returns the paths removed.
    @discardableResult
    public static func removeInterruptedSaves(inRun run: String) -> [String] {
        var removed = [String]()
        for directory in [path(run, foldersName), run] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                guard let pid = leftoverOwner(name), pid != getpid(), !isRunning(pid) else { continue }
                let full = path(directory, name)
                if (try? FileManager.default.removeItem(atPath: full)) != nil { removed.append(full) }
            }
        }
        return removed.sorted()
    }

    /// The process id in the name of a temporary this module writes, or nil for other names.
    static func leftoverOwner(_ name: String) -> Int32? {
        func lastNumber(after marker: String) -> Int32? {
            guard let range = name.range(of: marker, options: .backwards) else { return nil }
            let rest = name[range.upperBound...]
            let digits = rest.split(separator: "-").first.map(String.init) ?? ""
            return Int32(digits)
        }
        if name.hasPrefix(".partial-") {   // .partial-SEQ-PID
            return name.split(separator: "-").last.flatMap { Int32($0) }
        }
        if name.hasPrefix(".trash-") { return name.split(separator: "-").last.flatMap { Int32($0) } }
        if name.contains(".link-tmp-") { return lastNumber(after: ".link-tmp-") }
        if name.hasPrefix("."), name.contains(".tmp-") { return lastNumber(after: ".tmp-") }   // AtomicFile
        return nil
    }

    static func isRunning(_ pid: Int32) -> Bool { pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) }

    static func isRegularFile(_ path: String, followingLinks: Bool) -> Bool {
        var info = stat()
        let status = followingLinks ? stat(path, &info) : lstat(path, &info)
        return status == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }
}

import Checkpoints
import Datasets
import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, class 6: a checkpoint is saved atomically as a whole folder; `--resume` falls back
/// to the last complete one and says so; what an interrupted save leaves is removed at the next
/// start; run folders of the earlier layout still resume.
final class HostileCheckpointTests: XCTestCase {
    var dir: TemporaryDirectory!
    var data: String!
    override func setUp() {
        dir = TemporaryDirectory("hostile-checkpoints")
        data = dir.file("cifar")
        writeMiniatureCIFAR10(in: data)
    }
    override func tearDown() { dir.remove() }

    /// Trains `epochs` epochs (one checkpoint each) into `run`.
    func train(_ run: String, epochs: Int) throws -> TrainingSummary {
        try TrainingRun(.fresh(hostileConfiguration(data: data, epochs: epochs)), outputDirectory: run).run()
    }

    func testSaveLayoutKeepsTwoCompleteCheckpointsAndLinksTheNewest() throws {
        let run = dir.file("run")
        _ = try train(run, epochs: 3)
        let complete = TrainingCheckpoint.completeCheckpoints(inRun: run)
        XCTAssertEqual(complete.map(\.name), ["000003-step-6", "000002-step-4"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints").sorted(),
                       ["000002-step-4", "000003-step-6"], "no temporaries, older ones retired")
        for name in [TrainingCheckpoint.modelFileName, TrainingCheckpoint.stateFileName] {
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(run)/\(name)"),
                           "checkpoints/000003-step-6/\(name)")
        }
        // What `densenet evaluate --checkpoint run` and PyTorch read: the newest model file.
        XCTAssertNotNil(try TrainingCheckpoint.modelConfiguration(inFile: "\(run)/model.safetensors"))
        XCTAssertEqual(try TrainingCheckpoint.readProgress(model: complete[1].model, state: complete[1].state).globalStep, 4)
    }

    /// The newest checkpoint damaged in four ways: each time `--resume` falls back to the one
    /// before and says which it skipped and why.
    func testResumeFallsBackToTheLastCompleteCheckpointAndSaysSo() throws {
        let damages: [(String, (TrainingCheckpoint.Location) throws -> Void, String)] = [
            ("truncated model file", { try FileHandle(forWritingAtPath: $0.model)!.truncate(atOffset: 100) }, "model.safetensors"),
            ("state file missing", { try FileManager.default.removeItem(atPath: $0.state) }, "training-state.safetensors"),
            ("model from another save", { newest in
                let other = TrainingCheckpoint.completeCheckpoints(inRun: newest.run)[1]
                try FileManager.default.removeItem(atPath: newest.model)
                try FileManager.default.copyItem(atPath: other.model, toPath: newest.model)
            }, "not saved together"),
            ("state replaced by a named pipe", { newest in
                try FileManager.default.removeItem(atPath: newest.state)
                XCTAssertEqual(mkfifo(newest.state, 0o644), 0)
            }, "named pipe"),
        ]
        for (i, (label, damage, word)) in damages.enumerated() {
            let run = dir.file("run\(i)")
            _ = try train(run, epochs: 2)
            let newest = TrainingCheckpoint.completeCheckpoints(inRun: run)[0]
            try damage(newest)
            withoutHanging(label) {
                do {
                    let resumed = try TrainingRun(.resume(path: run, epochs: 3, data: nil))
                    XCTAssertEqual(resumed.resumed?.progress.globalStep, 2, label)
                    XCTAssertTrue(resumed.notes.contains { $0.contains("skipping checkpoint 000002-step-4") && $0.contains(word) },
                                  "\(label): \(resumed.notes)")
                    XCTAssertTrue(resumed.notes.contains { $0.contains("resuming from the last complete checkpoint, 000001-step-2") },
                                  "\(label): \(resumed.notes)")
                    let messages = RecordedMessages()
                    resumed.observer = messages
                    let summary = try resumed.run()
                    XCTAssertEqual(summary.globalStep, 6, label)
                    XCTAssertTrue(messages.lines.contains { $0.contains("skipping checkpoint") }, label)
                    // The damaged one is set aside, so the kept pair is the new save and the sound one.
                    XCTAssertTrue(messages.lines.contains { $0.contains("kept the damaged checkpoint") }, label)
                    XCTAssertEqual(TrainingCheckpoint.completeCheckpoints(inRun: run).map(\.name),
                                   ["000003-step-6", "000002-step-4"], label)
                    XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoints/damaged-000002-step-4"), label)
                } catch {
                    XCTFail("\(label): \(error)")
                }
            }
        }
    }

    func testEveryCheckpointDamagedIsAClearError() throws {
        let run = dir.file("run")
        _ = try train(run, epochs: 2)
        for location in TrainingCheckpoint.completeCheckpoints(inRun: run) {
            try FileHandle(forWritingAtPath: location.state)!.truncate(atOffset: 7)
        }
        refuses("both checkpoints truncated", mentioning: [run, "no checkpoint here can be resumed", "000001-step-2",
                                                          "000002-step-4", "too short"]) {
            try TrainingRun(.resume(path: run, epochs: 3, data: nil))
        }
        let empty = dir.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        refuses("a folder without checkpoints", mentioning: [empty, "no checkpoint here"]) {
            try TrainingRun(.resume(path: empty, epochs: nil, data: nil))
        }
        let pipe = dir.file("pipe")
        XCTAssertEqual(mkfifo(pipe, 0o644), 0)
        withoutHanging("--resume a named pipe", fifos: [pipe]) {
            refuses("--resume a named pipe", mentioning: [pipe, "named pipe"]) {
                try TrainingRun(.resume(path: pipe, epochs: nil, data: nil))
            }
        }
    }

    /// What a save killed half-way leaves (a partial folder, an AtomicFile temporary, a
    /// half-retired folder, a link temporary) is removed at the next start, and said.
    func testInterruptedSaveLeftoversAreRemovedAtTheNextStart() throws {
        let run = dir.file("run")
        _ = try train(run, epochs: 1)
        let dead: Int32 = 999_999   // above the default pid_max: no such process
        let leftovers = ["checkpoints/.partial-2-\(dead)", "checkpoints/.trash-000001-step-2-\(dead)",
                         ".metrics.json.tmp-\(dead)-12345", "model.safetensors.link-tmp-\(dead)"]
        for name in leftovers where name.hasPrefix("checkpoints/.partial") || name.contains(".trash-") {
            try FileManager.default.createDirectory(atPath: "\(run)/\(name)", withIntermediateDirectories: true)
            _ = dir.write("run/\(name)/model.safetensors", [1, 2, 3])
        }
        _ = dir.write("run/.metrics.json.tmp-\(dead)-12345", [1])
        XCTAssertEqual(symlink("checkpoints/.partial-2-\(dead)/model.safetensors", "\(run)/model.safetensors.link-tmp-\(dead)"), 0)
        // A temporary of a live process (this one) is left alone.
        _ = dir.write("run/.curves.svg.tmp-\(getpid())-1", [1])

        let resumed = try TrainingRun(.resume(path: run, epochs: 2, data: nil))
        let messages = RecordedMessages()
        resumed.observer = messages
        XCTAssertEqual(try resumed.run().globalStep, 4)
        for name in leftovers {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/\(name)") ||
                           (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(run)/\(name)")) != nil, name)
            XCTAssertTrue(messages.lines.contains { $0.contains(name) && $0.contains("interrupted save") }, "\(name): \(messages.lines)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/.curves.svg.tmp-\(getpid())-1"))
    }

    /// A run folder of the earlier layout (the pair as regular files in it) resumes; its first
    /// new save keeps the old pair as a checkpoint folder before linking the new one.
    func testEarlierLayoutRunFolderResumes() throws {
        let source = dir.file("source")
        _ = try train(source, epochs: 1)
        let old = dir.file("old")
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        let newest = TrainingCheckpoint.completeCheckpoints(inRun: source)[0]
        try FileManager.default.copyItem(atPath: newest.model, toPath: "\(old)/model.safetensors")
        try FileManager.default.copyItem(atPath: newest.state, toPath: "\(old)/training-state.safetensors")
        let resumed = try TrainingRun(.resume(path: "\(old)/training-state.safetensors", epochs: 2, data: nil))
        XCTAssertEqual(resumed.outputDirectory, old)
        XCTAssertEqual(try resumed.run().globalStep, 4)
        XCTAssertEqual(TrainingCheckpoint.completeCheckpoints(inRun: old).map(\.name), ["000001-step-4", "000000-step-2"])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(old)/model.safetensors"),
                       "checkpoints/000001-step-4/model.safetensors")
        // And a checkpoint folder given directly resumes that checkpoint.
        let first = try TrainingRun(.resume(path: "\(old)/checkpoints/000000-step-2", epochs: 2, data: nil))
        XCTAssertEqual(first.resumed?.progress.globalStep, 2)
        XCTAssertEqual(first.outputDirectory, old)
    }
}

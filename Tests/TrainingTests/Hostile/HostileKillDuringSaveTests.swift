import Foundation
import Runtime
import Training
import XCTest

/// Issue 11, class 6, in a real child process: this test executable re-invoked on
/// `HostileKillChild` trains the tiny model of `hostileConfiguration` with a checkpoint at
/// every epoch (~2 steps), and is killed with SIGKILL at a random moment, several times. After
/// each kill every complete checkpoint loads, and the run resumes from the last one.
final class HostileKillDuringSaveTests: XCTestCase {
    static let kills = 16

    func testKilledAtRandomMomentsTheLastCompleteCheckpointAlwaysResumes() throws {
        let dir = TemporaryDirectory("hostile-kill")
        defer { dir.remove() }
        let data = dir.file("cifar"), run = dir.file("run")
        writeMiniatureCIFAR10(in: data)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var rng = SeededGenerator(seed: 11)
        var killsWithLeftovers = 0, killsBeforeAnyCheckpoint = 0
        var lastStep = 0
        for kill in 1...HostileKillDuringSaveTests.kills {
            let child = Process()
            child.executableURL = executable
            child.arguments = ["TrainingTests.HostileKillChild/testTrainUntilKilled"]
            var environment = ProcessInfo.processInfo.environment
            environment["HOSTILE_KILL_CHILD_RUN"] = run
            environment["HOSTILE_KILL_CHILD_DATA"] = data
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            // Wait until the child has saved once in this life (or at most 5 s), then kill it
            // 0–300 ms later: mostly mid-epoch, often mid-save.
            let before = TrainingCheckpoint.completeCheckpoints(inRun: run).first?.sequence ?? 0
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, child.isRunning,
                  (TrainingCheckpoint.completeCheckpoints(inRun: run).first?.sequence ?? 0) <= before {
                usleep(2_000)
            }
            usleep(UInt32(Double.random(in: 0..<0.3, using: &rng) * 1e6))
            XCTAssertTrue(child.isRunning, "kill \(kill): the child ended on its own (status \(child.terminationStatus))")
            Foundation.kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal)

            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")) ?? [])
                .filter { $0.hasPrefix(".") }
            if !leftovers.isEmpty { killsWithLeftovers += 1 }
            let complete = TrainingCheckpoint.completeCheckpoints(inRun: run)
            if complete.isEmpty {
                killsBeforeAnyCheckpoint += 1
                refuses("kill \(kill) before the first save", mentioning: ["no checkpoint here"]) {
                    try TrainingRun(.resume(path: run, epochs: nil, data: nil))
                }
                continue
            }
            // Every complete checkpoint is a sound pair.
            for location in complete {
                XCTAssertNoThrow(try TrainingCheckpoint.readProgress(model: location.model, state: location.state),
                                 "kill \(kill): \(location.name)")
            }
            // The last complete one resumes (here, in this process) and trains one more epoch.
            let resumed = try TrainingRun(.resume(path: run, epochs: nil, data: nil))
            XCTAssertEqual(resumed.resumed?.model, complete[0].model, "kill \(kill): \(resumed.notes)")
            let step = try XCTUnwrap(resumed.resumed?.progress.globalStep)
            XCTAssertGreaterThanOrEqual(step, lastStep, "kill \(kill): progress never goes back")
            resumed.stopAfterEpoch = (resumed.resumed?.progress.loader.epoch ?? 0) + 1
            let summary = try resumed.run()
            XCTAssertEqual(summary.globalStep, step + 2, "kill \(kill)")
            lastStep = summary.globalStep
            XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")) ?? [])
                .contains { $0.hasPrefix(".") }, "kill \(kill): leftovers removed at the resumed start")
        }
        XCTAssertLessThan(killsBeforeAnyCheckpoint, HostileKillDuringSaveTests.kills / 2, "most kills came after a save")
        print("HostileKillDuringSaveTests: \(HostileKillDuringSaveTests.kills) kills, \(killsWithLeftovers) mid-save"
              + " (a partial checkpoint folder left), \(killsBeforeAnyCheckpoint) before the first save, 0 unresumable")
    }
}

/// The child of `HostileKillDuringSaveTests` (does nothing in a normal test run): trains until
/// killed, resuming the run folder when it already holds a checkpoint.
final class HostileKillChild: XCTestCase {
    func testTrainUntilKilled() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let run = environment["HOSTILE_KILL_CHILD_RUN"], let data = environment["HOSTILE_KILL_CHILD_DATA"] else { return }
        let start: TrainingRun.Start = TrainingCheckpoint.completeCheckpoints(inRun: run).isEmpty
            ? .fresh(hostileConfiguration(data: data, epochs: 1_000_000)) : .resume(path: run, epochs: nil, data: nil)
        _ = try TrainingRun(start, outputDirectory: run).run()
    }
}

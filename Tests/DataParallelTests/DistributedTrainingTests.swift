import Checkpoints
import Foundation
import Runtime
import XCTest

/// `mpirun -np 2 densenet train` against `densenet train` in one process, on 50 real
/// Fashion-MNIST images with a tiny DenseNet-BC (one dense layer per block, k = 4, 16x16 input,
/// dropout 0.2), batch 21: slices of 11 and 10 examples, and a last batch of 8 (4 and 4), so the
/// loss weighting of unequal slices is exercised. Every run is a real process (two under mpirun).
final class DistributedTrainingTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") else {
            throw XCTSkip("Fashion-MNIST is not installed at /usr/share/datasets/fashion-mnist (Scripts/setup.sh --data)")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    static let tolerance = 1e-5

    func arguments(strategy: String, epochs: Int = 1, out: String) -> [String] {
        ["train", "--data", "fashion-mnist", "--model", "densenet-bc-10-4", "--input", "1x16x16", "--limit", "50",
         "--test-limit", "30", "--batch", "21", "--epochs", "\(epochs)", "--optimizer", "sgd", "--lr", "0.1",
         "--momentum", "0.9", "--dropout", "0.2", "--threads", "1", "--strategy", strategy,
         "--out", folder.appendingPathComponent(out).path]
    }

    /// `densenet <arguments>` alone, or under `mpirun -np ranks`; fails the test unless it succeeds.
    @discardableResult
    func train(ranks: Int, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> MPIJob.Result {
        let densenet = try MPIJob.product("densenet")
        let run = ranks == 1 ? try MPIJob.run(executable: densenet, arguments, timeout: 120)
                             : try MPIJob.run(["-np", "\(ranks)", densenet.path] + arguments, timeout: 120)
        XCTAssertFalse(run.timedOut, run.output, file: file, line: line)
        XCTAssertEqual(run.status, 0, run.output, file: file, line: line)
        return run
    }

    func tensors(_ run: String) throws -> [String: [Float]] {
        let contents = try Safetensors.read(folder.appendingPathComponent("\(run)/model.safetensors").path)
        return contents.tensors.mapValues(\.array)
    }

    /// (phase, step, loss) of every line of a run's metrics.csv.
    func losses(_ run: String) throws -> [(String, Int, Double)] {
        let text = try String(contentsOf: folder.appendingPathComponent("\(run)/metrics.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            return (String(f[0]), Int(f[2]) ?? -1, Double(f[3]) ?? .nan)
        }
    }

    /// The largest relative difference between two runs' tensors (max |a − b| / max |a| per
    /// tensor), and where; every tensor must be in both.
    func worstTensorDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> (Double, String) {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var worst = (0.0, "")
        for (name, x) in a {
            guard let y = b[name], y.count == x.count else { XCTFail("\(name) differs in shape"); continue }
            let scale = max(Double(x.map(abs).max() ?? 0), 1e-12)
            let difference = zip(x, y).map { Double(abs($0 - $1)) }.max() ?? 0
            if difference / scale > worst.0 { worst = (difference / scale, name) }
        }
        return worst
    }

    func worstLossDifference(_ a: [(String, Int, Double)], _ b: [(String, Int, Double)]) -> Double {
        XCTAssertEqual(a.map { "\($0.0) \($0.1)" }, b.map { "\($0.0) \($0.1)" }, "the same records")
        return zip(a, b).map { abs($0.2 - $1.2) / max(abs($0.2), 1e-12) }.max() ?? .infinity
    }

    /// Three SGD steps over 2 ranks with synchronised batch norm: the same weights, running
    /// statistics and losses as one process with the whole batch; with per-rank statistics not.
    func checkEquivalence(strategy: String, perRankToo: Bool) throws {
        try train(ranks: 1, arguments(strategy: strategy, out: "one"))
        // Buckets of about 512 bytes: several reductions, started while backward still runs.
        let two = try train(ranks: 2, arguments(strategy: strategy, out: "two") + ["--bucket-cap-mb", "0.0005"])
        let marker = "data-parallel over 2 ranks: "
        let buckets = two.output.range(of: marker).flatMap { Int(two.output[$0.upperBound...].prefix { $0.isNumber }) }
        XCTAssertGreaterThan(buckets ?? 0, 2, two.output)
        let one = try tensors("one")
        let (worst, name) = worstTensorDifference(one, try tensors("two"))
        let lossDifference = worstLossDifference(try losses("one"), try losses("two"))
        print("\(strategy): 2 ranks with synchronised batch norm vs 1 process: weights and running statistics differ by"
              + " at most \(worst) relative (\(name)), losses by \(lossDifference) relative")
        XCTAssertEqual(try losses("two").filter { $0.0 == "train" }.count, 3)
        XCTAssertLessThan(worst, Self.tolerance, "\(strategy): \(name)")
        XCTAssertLessThan(lossDifference, Self.tolerance, strategy)
        guard perRankToo else { return }
        try train(ranks: 2, arguments(strategy: strategy, out: "per-rank") + ["--no-sync-batchnorm"])
        let (perRank, perRankName) = worstTensorDifference(one, try tensors("per-rank"))
        print("\(strategy): 2 ranks with per-rank batch statistics vs 1 process: \(perRank) relative (\(perRankName))")
        XCTAssertGreaterThan(perRank, 1e-3, "per-rank statistics must change the result, or the test measures nothing")
    }

    func testTwoRanksTrainLikeOneProcessUnderNaive() throws {
        try checkEquivalence(strategy: "naive", perRankToo: true)
    }

    func testTwoRanksTrainLikeOneProcessUnderMinimal() throws {
        try checkEquivalence(strategy: "minimal", perRankToo: false)
    }

    /// `fused`: statistics by the rule's synchronised path, the BN/ReLU gradient's blocks and the
    /// transitions' fused pooling each reduced over the ranks.
    func testTwoRanksTrainLikeOneProcessUnderFused() throws {
        try checkEquivalence(strategy: "fused", perRankToo: false)
    }

    /// Two epochs of 3 steps: straight in one process; stopped after step 2 over 2 ranks and
    /// resumed in one process; stopped after step 4 in one process and resumed over 2 ranks.
    func testResumeWithAnotherNumberOfRanks() throws {
        try train(ranks: 1, arguments(strategy: "shared", epochs: 2, out: "straight"))
        try train(ranks: 2, arguments(strategy: "shared", epochs: 2, out: "two-then-one") + ["--stop-after-step", "2"])
        XCTAssertEqual(try losses("two-then-one").filter { $0.0 == "train" }.count, 2)
        try train(ranks: 1, ["train", "--threads", "1", "--resume", folder.appendingPathComponent("two-then-one").path])
        try train(ranks: 1, arguments(strategy: "shared", epochs: 2, out: "one-then-two") + ["--stop-after-step", "4"])
        try train(ranks: 2, ["train", "--threads", "1", "--resume", folder.appendingPathComponent("one-then-two").path])
        let straight = try losses("straight")
        XCTAssertEqual(straight.filter { $0.0 == "train" }.count, 6)
        for run in ["two-then-one", "one-then-two"] {
            let difference = worstLossDifference(straight, try losses(run))
            print("resume \(run): losses differ from the uninterrupted run by at most \(difference) relative")
            XCTAssertLessThan(difference, Self.tolerance, run)
            let (worst, name) = worstTensorDifference(try tensors("straight"), try tensors(run))
            XCTAssertLessThan(worst, Self.tolerance, "\(run): \(name)")
        }
    }

    /// A rank killed in the middle of training ends the job, non-zero, within a bounded time.
    func testAKilledTrainingRankEndsTheJob() throws {
        let densenet = try MPIJob.product("densenet")
        var arguments = arguments(strategy: "naive", epochs: 500, out: "killed")
        arguments[arguments.firstIndex(of: "50")!] = "200"
        let run = try MPIJob.run(["-np", "2", densenet.path] + arguments, timeout: 90) { mpirun in
            // Wait for the first logged step, then kill one rank (a child of mpirun) outright.
            let metrics = self.folder.appendingPathComponent("killed/metrics.csv").path
            let started = Date()
            while Date().timeIntervalSince(started) < 60 {
                if let text = try? String(contentsOfFile: metrics, encoding: .utf8), text.contains("train,1,2,") { break }
                usleep(50_000)
            }
            guard let rank = MPIJob.children(of: mpirun).last else { return "no rank found to kill" }
            kill(rank, SIGKILL)
            return "killed rank process \(rank)"
        }
        run.assertFailedPromptly(saying: ["killed rank process", "signal 9"])
    }

    /// `bench-memory --ranks 2` runs each configuration under mpirun and reports both ranks.
    func testBenchMemoryOverTwoRanks() throws {
        let out = folder.appendingPathComponent("bench")
        let run = try MPIJob.run(executable: try MPIJob.product("bench-memory"),
                                 ["--model", "densenet-bc-10-4", "--input", "3x16x16", "--batch", "9", "--strategies", "naive",
                                  "--steps", "2", "--warmup", "0", "--threads", "1", "--ranks", "2", "--out", out.path],
                                 timeout: 120)
        XCTAssertEqual(run.status, 0, run.output)
        let data = try Data(contentsOf: out.appendingPathComponent("results.json"))
        let records = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(records.count, 1)
        let r = try XCTUnwrap(records.first)
        XCTAssertEqual(r["status"] as? String, "ok", "\(r)")
        XCTAssertEqual(r["ranks"] as? Int, 2)
        let perRank = try XCTUnwrap(r["peak_rss_per_rank_mib"] as? [Double])
        XCTAssertEqual(perRank.count, 2)
        XCTAssertEqual(r["peak_rss_mib"] as? Double, perRank.max())
        XCTAssertTrue(perRank.allSatisfy { $0 > 1 }, "\(perRank)")
        let share = try XCTUnwrap(r["communication_share"] as? Double)
        XCTAssertTrue(share >= 0 && share <= 1, "\(share)")
        XCTAssertEqual((r["step_times_s"] as? [Double])?.count, 2)
    }

    /// Scripts/two_namespaces.sh: the two ranks in two network namespaces over TCP (two "hosts")
    /// train what one process trains. Skipped where namespaces cannot be made.
    func testTwoRanksInTwoNetworkNamespacesTrainLikeOneProcess() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Scripts/two_namespaces.sh")
        let densenet = try MPIJob.product("densenet")
        let run = try MPIJob.run(executable: script, [densenet.path] + arguments(strategy: "naive", out: "hosts"), timeout: 120)
        if run.status == 77 { throw XCTSkip(run.output) }
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("veth-a"), "traffic went over the veth pair: \(run.output)")
        try train(ranks: 1, arguments(strategy: "naive", out: "one"))
        let (worst, name) = worstTensorDifference(try tensors("one"), try tensors("hosts"))
        print("two network namespaces over TCP vs 1 process: weights and running statistics differ by at most \(worst) relative (\(name))")
        XCTAssertLessThan(worst, Self.tolerance, name)
        XCTAssertLessThan(worstLossDifference(try losses("one"), try losses("hosts")), Self.tolerance)
    }

    /// A global batch that cannot give each rank an example is refused before training, with a
    /// message, by every rank: the job ends non-zero at once.
    func testABatchTooSmallForTheRanksIsRefused() throws {
        var arguments = arguments(strategy: "naive", out: "small")
        arguments[arguments.firstIndex(of: "21")!] = "24"
        arguments[arguments.firstIndex(of: "50")!] = "49"   // 49 = 2·24 + 1: the last batch has 1 example
        let run = try MPIJob.run(["-np", "2", try MPIJob.product("densenet").path] + arguments, timeout: 60)
        XCTAssertFalse(run.timedOut, run.output)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("cannot give each of 2 ranks one"), run.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("small/model.safetensors").path))
    }
}

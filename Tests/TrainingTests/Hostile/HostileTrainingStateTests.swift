import Checkpoints
import DenseNetModels
import Foundation
import NeuralLayers
import Runtime
import Training
import XCTest

/// Issue 11, class 7: a training state that lies is refused with the field named, before it
/// trains; a NaN or infinite loss or weight is never written into a checkpoint.
final class HostileTrainingStateTests: XCTestCase {
    var dir: TemporaryDirectory!
    var data: String!
    override func setUp() {
        dir = TemporaryDirectory("hostile-state")
        data = dir.file("cifar")
        writeMiniatureCIFAR10(in: data)
    }
    override func tearDown() { dir.remove() }

    /// A run of 20 examples in batches of 10 (2 steps per epoch) stopped after step 3, so its
    /// state is mid-epoch (epoch 1, position 10, global step 3).
    func sourceRun() throws -> TrainingCheckpoint.Location {
        let r = try TrainingRun(.fresh(hostileConfiguration(data: data, epochs: 4)), outputDirectory: dir.file("source"))
        r.stopAfterStep = 3
        _ = try r.run()
        return TrainingCheckpoint.completeCheckpoints(inRun: dir.file("source"))[0]
    }

    /// An earlier-layout run folder holding `source`'s pair with its training progress edited.
    func lyingRun(_ name: String, from source: TrainingCheckpoint.Location, edit: (inout [String: Any]) -> Void) throws -> String {
        let run = dir.file(name)
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source.model, toPath: run + "/model.safetensors")
        let contents = try Safetensors.read(source.state, category: .scratch)
        var metadata = contents.metadata
        var progress = try JSONSerialization.jsonObject(with: Data(metadata["training_progress"]!.utf8)) as! [String: Any]
        edit(&progress)
        metadata["training_progress"] = String(decoding: try JSONSerialization.data(withJSONObject: progress), as: UTF8.self)
        try Safetensors.write(contents.tensors, metadata: metadata, to: run + "/training-state.safetensors")
        return run
    }

    func testLyingTrainingStatesAreRefusedNamingTheField() throws {
        let source = try sourceRun()
        func loader(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { p in var l = p["loader"] as! [String: Any]; edit(&l); p["loader"] = l }
        }
        func configuration(_ edit: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { p in var c = p["configuration"] as! [String: Any]; edit(&c); p["configuration"] = c }
        }
        let cases: [(String, (inout [String: Any]) -> Void, [String])] = [
            ("negative global step", { $0["globalStep"] = -5 }, ["globalStep", "-5"]),
            ("global step Int.max", { $0["globalStep"] = Int.max }, ["globalStep"]),
            ("global step off the loader", { $0["globalStep"] = 2 }, ["globalStep", "is step 3"]),
            ("optimizer step count", { $0["optimizerStepCount"] = 99 }, ["optimizerStepCount", "99"]),
            ("negative epoch", loader { $0["epoch"] = -1 }, ["loader.epoch", "-1"]),
            ("epoch 5 x 10^18 (overflow)", loader { $0["epoch"] = 5_000_000_000_000_000_000 }, ["loader.epoch"]),
            ("position Int.max", loader { $0["position"] = Int.max }, ["loader.position", "\(Int.max)"]),
            ("position past the data set", loader { $0["position"] = 30 }, ["loader.position", "30"]),
            ("negative position", loader { $0["position"] = -10 }, ["loader.position"]),
            ("position off a batch boundary", loader { $0["position"] = 7 }, ["loader.position", "batch boundary"]),
            ("zero examples per epoch", loader { $0["exampleCount"] = 0 }, ["loader.exampleCount"]),
            ("loader batch size", loader { $0["batchSize"] = 3 }, ["loader.batchSize", "10"]),
            ("loader seed not a number", loader { $0["seed"] = "x" }, ["loader.seed"]),
            ("loader seed of another run", loader { $0["seed"] = "4" }, ["loader.seed", "the run's seed is 3"]),
            ("dropout seed", { $0["dropoutSeed"] = "-1" }, ["dropoutSeed"]),
            ("loss sum bits not hex", { $0["epochLossSumBits"] = "zz" }, ["epochLossSumBits"]),
            ("loss sum NaN", { $0["epochLossSumBits"] = String(Double.nan.bitPattern, radix: 16) }, ["epochLossSumBits", "nan"]),
            ("loss sum -inf", { $0["epochLossSumBits"] = String((-Double.infinity).bitPattern, radix: 16) }, ["epochLossSumBits"]),
            ("epoch examples", { $0["epochExamples"] = 5 }, ["epochExamples", "position 10"]),
            ("correct > examples", { $0["epochCorrect"] = 11 }, ["epochCorrect", "11"]),
            ("negative correct", { $0["epochCorrect"] = -1 }, ["epochCorrect"]),
            ("negative seconds", { $0["runSeconds"] = -1 }, ["runSeconds"]),
            ("zero epochs", configuration { $0["epochs"] = 0 }, ["--epochs", "0"]),
            ("negative learning rate", configuration { c in
                var o = c["optimizer"] as! [String: Any]; o["learningRate"] = -1; c["optimizer"] = o }, ["--lr", "-1"]),
            ("zero batch", configuration { $0["batchSize"] = 0 }, ["--batch"]),
            ("warm-up past the run", configuration { $0["warmupEpochs"] = 1e300 }, ["--warmup-epochs"]),
            ("negative milestone", configuration { $0["milestones"] = [-1] }, ["--milestones"]),
            ("model of 10^12 classes", configuration { c in
                var m = c["model"] as! [String: Any]; var e = m["denseNet"] as! [String: Any]; var d = e["_0"] as! [String: Any]
                d["classCount"] = 1_000_000_000_000; e["_0"] = d; m["denseNet"] = e; c["model"] = m }, ["model_configuration", "physical memory"]),
            ("input 1x4611686018427387904x2", configuration { c in
                var m = c["model"] as! [String: Any]; var e = m["denseNet"] as! [String: Any]; var d = e["_0"] as! [String: Any]
                d["input"] = "1x4611686018427387904x2"; e["_0"] = d; m["denseNet"] = e; c["model"] = m },
             ["model_configuration.input", "overflows"]),
            ("model of 10^9 layers", configuration { c in
                var m = c["model"] as! [String: Any]; var e = m["denseNet"] as! [String: Any]; var d = e["_0"] as! [String: Any]
                d["blockConfig"] = [1_000_000_000, 1]; e["_0"] = d; m["denseNet"] = e; c["model"] = m }, ["model_configuration"]),
        ]
        for (i, (label, edit, words)) in cases.enumerated() {
            let run = try lyingRun("lie\(i)", from: source, edit: edit)
            refuses(label, mentioning: words) { try TrainingRun(.resume(path: run, epochs: nil, data: nil)) }
        }
        // The unedited state passes (the checks are not too strict), and a state whose loader
        // exampleCount is self-consistent but not the data's is refused once the data is read.
        XCTAssertNoThrow(try TrainingRun(.resume(path: try lyingRun("honest", from: source) { _ in }, epochs: nil, data: nil)))
        let resized = try lyingRun("resized", from: source) { p in
            var l = p["loader"] as! [String: Any]; l["exampleCount"] = 30; p["loader"] = l
            var c = p["configuration"] as! [String: Any]; c["limit"] = 30; p["configuration"] = c
            p["globalStep"] = 4; p["optimizerStepCount"] = 4
        }
        refuses("examples per epoch not the data's", mentioning: ["loader.exampleCount", "20 examples per epoch"]) {
            try TrainingRun(.resume(path: resized, epochs: nil, data: nil))
        }
    }

    /// The newest checkpoint lies, the previous one is sound: resume falls back and says why.
    func testALyingNewestStateFallsBackToThePreviousCheckpoint() throws {
        let run = dir.file("run")
        _ = try TrainingRun(.fresh(hostileConfiguration(data: data, epochs: 2)), outputDirectory: run).run()
        let newest = TrainingCheckpoint.completeCheckpoints(inRun: run)[0]
        let contents = try Safetensors.read(newest.state, category: .scratch)
        var metadata = contents.metadata
        metadata["training_progress"] = metadata["training_progress"]!.replacingOccurrences(of: "\"globalStep\":4", with: "\"globalStep\":-4")
        try Safetensors.write(contents.tensors, metadata: metadata, to: newest.state)
        let resumed = try TrainingRun(.resume(path: run, epochs: 3, data: nil))
        XCTAssertEqual(resumed.resumed?.progress.globalStep, 2)
        XCTAssertTrue(resumed.notes.contains { $0.contains("globalStep is -4") }, "\(resumed.notes)")
    }

    /// NaN or infinite weights, optimizer buffers or losses are refused before anything is
    /// written: the previous checkpoint stays the newest.
    func testNonFiniteStateIsNeverSaved() throws {
        let run = dir.file("run")
        _ = try TrainingRun(.fresh(hostileConfiguration(data: data, epochs: 1)), outputDirectory: run).run()
        let saved = TrainingCheckpoint.completeCheckpoints(inRun: run)
        let good = try TrainingCheckpoint.readProgress(model: saved[0].model, state: saved[0].state)
        let configuration = try good.configuration.model
        for (label, poison) in [("NaN weight", Float.nan), ("+inf weight", .infinity), ("-inf momentum", -.infinity)] {
            let model = try ModelFactory.build(configuration, policy: .shared)
            let optimizer = good.configuration.optimizer.make(model.parameters)
            try TrainingCheckpoint.loadModel(model, from: saved[0].model)
            try TrainingCheckpoint.loadOptimizer(optimizer, parameterNames: model.namedParameters().map(\.name),
                                                 from: saved[0].state, stepCount: good.optimizerStepCount)
            let target = label.contains("momentum") ? optimizer.namedState()[1].tensor : model.parameters[2].value
            target.withPointer { $0[0] = poison }
            refuses(label, mentioning: ["not saving a checkpoint", "not finite", "previous checkpoint is kept"]) {
                try TrainingCheckpoint.save(directory: run, model: model, optimizer: optimizer, progress: good)
            }
            var lying = good
            lying.epochLossSumBits = String(Double.nan.bitPattern, radix: 16)
            target.withPointer { $0[0] = 0 }
            refuses("\(label) fixed, NaN epoch loss", mentioning: ["loss sum", "not finite"]) {
                try TrainingCheckpoint.save(directory: run, model: model, optimizer: optimizer, progress: lying)
            }
        }
        XCTAssertEqual(TrainingCheckpoint.completeCheckpoints(inRun: run), saved, "nothing written")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints"), saved.map(\.name))
    }

    /// A run that diverges (learning rate 10^12) stops with a clear error at the first NaN or
    /// infinite loss, or at the first save of a non-finite weight or statistic, whichever comes
    /// first; no checkpoint it left holds a non-finite number.
    func testADivergingRunStopsBeforeSavingNaN() throws {
        var c = hostileConfiguration(data: data, epochs: 20)
        c.optimizer.learningRate = 1e12
        let run = dir.file("diverged")
        refuses("learning rate 1e12", mentioning: ["diverged", "--lr"]) {
            try TrainingRun(.fresh(c), outputDirectory: run).run()
        }
        for location in TrainingCheckpoint.completeCheckpoints(inRun: run) {
            for file in [location.model, location.state] {
                for (name, t) in try Safetensors.read(file, category: .scratch).tensors {
                    XCTAssertTrue(t.array.allSatisfy(\.isFinite), "\(location.name) \(name)")
                }
            }
        }
    }
}

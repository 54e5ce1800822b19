import ArgumentParser
import Datasets
import Foundation
import Runtime
import Training

/// `densenet predict`: the top-k classes and probabilities of image files, as CSV.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify image files with a trained checkpoint: top-k classes and probabilities as CSV.",
        discussion: """
        --checkpoint takes a run folder of `densenet train` (or its model.safetensors); the model and \
        its class names come from the checkpoint's metadata, the normalisation from its training \
        state. --images takes PNG and JPEG files and folders (searched recursively). Each image is \
        resized (shorter side) and centre-cropped to the model's input, as an image folder's \
        validation split. Writes a header and one row per image, in the order given, to standard \
        output or --csv FILE.
        """)

    @Option(help: "Run folder or model.safetensors of a trained model.")
    var checkpoint: String
    @Option(parsing: .upToNextOption, help: "Image files and folders of them.")
    var images: [String]
    @Option(help: "Classes per image (default 5).")
    var top: Int = 5
    @Option(help: "Write the CSV here instead of standard output.")
    var csv: String?
    @Option(help: "Images per batch.")
    var batch: Int = 32
    @Option(help: "Threads (default: all cores).")
    var threads: Int?
    @Flag(name: .customLong("skip-bad-images"), help: "Leave out files that cannot be decoded (logged) instead of stopping.")
    var skipBadImages = false

    func run() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            Parallel.threadCount = threads
        }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        let paths = try Predictor.imageFiles(images)
        guard !paths.isEmpty else { throw ValidationError("--images names no PNG or JPEG file") }
        let predictor = try Predictor(checkpoint: checkpoint)
        for note in predictor.notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        let k = min(top, predictor.configuration.outputCount)
        let rows = try predictor.predict(paths, top: k, batchSize: batch, skipBadImages: skipBadImages)
        let text = Predictor.csv(rows, top: k)
        if let csv {
            guard FileManager.default.createFile(atPath: csv, contents: Data(text.utf8)) else {
                throw ValidationError("cannot write \(csv)")
            }
            FileHandle.standardError.write(Data("\(rows.count) predictions written to \(csv)\n".utf8))
        } else {
            print(text, terminator: "")
        }
    }
}

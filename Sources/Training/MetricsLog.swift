import Checkpoints
import Datasets
import Foundation

/// One logged measurement: a training step, an epoch's training mean, or an epoch's test result.
public struct MetricRecord: Codable, Equatable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// One optimizer step: the batch's loss and accuracy (before the update).
        case train
        /// Mean over the epoch's training batches (weighted by examples).
        case trainEpoch = "train_epoch"
        /// The test set at the epoch's end, in evaluation mode.
        case test
    }

    public var phase: Phase
    /// 1-based epoch.
    public var epoch: Int
    /// Optimizer steps taken when the record was made.
    public var step: Int
    public var loss: Double
    public var accuracy: Double
    /// The rate of this step (train rows only; 0 otherwise).
    public var learningRate: Double
    /// Training images per second over the epoch so far.
    public var imagesPerSecond: Double
    /// Seconds since the run started (excluding time between an interruption and its resume).
    public var elapsedSeconds: Double
    /// VmHWM, the process's peak resident set.
    public var peakResidentBytes: Int
    /// `Memory.peak`, the runtime's peak of counted tensor bytes.
    public var runtimePeakBytes: Int

    public init(phase: Phase, epoch: Int, step: Int, loss: Double, accuracy: Double, learningRate: Double = 0,
                imagesPerSecond: Double = 0, elapsedSeconds: Double = 0, peakResidentBytes: Int = 0,
                runtimePeakBytes: Int = 0) {
        self.phase = phase
        self.epoch = epoch
        self.step = step
        self.loss = loss
        self.accuracy = accuracy
        self.learningRate = learningRate
        self.imagesPerSecond = imagesPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.peakResidentBytes = peakResidentBytes
        self.runtimePeakBytes = runtimePeakBytes
    }

    static let csvHeader = "phase,epoch,step,loss,accuracy,learning_rate,images_per_second,elapsed_seconds,peak_rss_bytes,runtime_peak_bytes"

    /// Losses and accuracies with 17 significant digits and rates (Floats) with 9, so the text
    /// reads back to the same bits.
    var csvLine: String {
        [phase.rawValue, String(epoch), String(step), String(format: "%.17g", loss), String(format: "%.17g", accuracy),
         String(format: "%.9g", learningRate), String(format: "%.1f", imagesPerSecond),
         String(format: "%.3f", elapsedSeconds), String(peakResidentBytes), String(runtimePeakBytes)]
            .joined(separator: ",")
    }

    init?(csvLine line: Substring) {
        let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 10, let phase = Phase(rawValue: f[0]), let epoch = Int(f[1]), let step = Int(f[2]),
              let loss = Double(f[3]), let accuracy = Double(f[4]), let rate = Float(f[5]),
              let speed = Double(f[6]), let elapsed = Double(f[7]), let rss = Int(f[8]), let peak = Int(f[9])
        else { return nil }
        // Rates are Floats written with 9 digits: read back as the same Float.
        self.init(phase: phase, epoch: epoch, step: step, loss: loss, accuracy: accuracy, learningRate: Double(rate),
                  imagesPerSecond: speed, elapsedSeconds: elapsed, peakResidentBytes: rss, runtimePeakBytes: peak)
    }
}

/// The metrics of a run, in its folder: `metrics.csv` (one line per record, appended and
/// flushed as they come, so a crash loses nothing), `metrics.json` (configuration and all
/// records, rewritten at each epoch's end) and `curves.svg` (loss and accuracy curves).
public final class MetricsLog {
    public static let csvFileName = "metrics.csv"
    public static let jsonFileName = "metrics.json"
    public static let plotFileName = "curves.svg"

    public let directory: String
    public private(set) var records: [MetricRecord] = []
    private var handle: FileHandle?
    /// False for the ranks other than 0 of a data-parallel run: records are kept, no file is written.
    public let writesFiles: Bool

    /// A new log, or, when `resumingAtStep` is given, the existing one cut back to the records
    /// made up to that step (lines written after the checkpoint by an interrupted run go).
    public init(directory: String, resumingAtStep: Int? = nil, writesFiles: Bool = true) throws {
        self.directory = directory
        self.writesFiles = writesFiles
        let path = csvPath
        // Read through `FileBytes` so that a named pipe in the run folder is refused, not waited on.
        if let step = resumingAtStep, let bytes = try? FileBytes.readRaw(path) {
            let text = String(decoding: bytes, as: UTF8.self)
            records = text.split(separator: "\n").dropFirst().compactMap { MetricRecord(csvLine: $0) }
                .filter { $0.step <= step }
        }
        guard writesFiles else { return }
        let body = ([MetricRecord.csvHeader] + records.map(\.csvLine)).joined(separator: "\n") + "\n"
        try AtomicFile.write(to: path) { try $0.write(Array(body.utf8)) }
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    deinit { try? handle?.close() }

    public var csvPath: String { (directory as NSString).appendingPathComponent(MetricsLog.csvFileName) }
    public var jsonPath: String { (directory as NSString).appendingPathComponent(MetricsLog.jsonFileName) }
    public var plotPath: String { (directory as NSString).appendingPathComponent(MetricsLog.plotFileName) }

    public func append(_ record: MetricRecord) {
        records.append(record)
        handle?.write(Data((record.csvLine + "\n").utf8))
    }

    /// Rewrites `metrics.json` and `curves.svg` from the records.
    public func writeSummaries(configuration: TrainingConfiguration, extra: [String: String] = [:]) throws {
        guard writesFiles else { return }
        struct Document: Encodable {
            var configuration: TrainingConfiguration
            var run: [String: String]
            var records: [MetricRecord]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(Document(configuration: configuration, run: extra, records: records))
        try AtomicFile.write(to: jsonPath) { try $0.write(Array(json)) }
        let title = "\(configuration.model.name) on \(configuration.data.name), \(configuration.strategy.name)"
        let svg = CurvePlot.svg(records, title: title)
        try AtomicFile.write(to: plotPath) { try $0.write(Array(svg.utf8)) }
    }
}

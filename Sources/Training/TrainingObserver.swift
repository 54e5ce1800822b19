import Foundation
import Runtime

/// Where a run is after one step, for progress displays.
public struct StepProgress: Sendable {
    /// 1-based.
    public var epoch: Int
    public var epochs: Int
    /// 1-based step within the epoch.
    public var stepInEpoch: Int
    public var stepsPerEpoch: Int
    public var globalStep: Int
    /// This batch's loss.
    public var loss: Float
    /// Running means over the epoch so far.
    public var epochLoss: Double
    public var epochAccuracy: Double
    public var learningRate: Float
    public var imagesPerSecond: Double
    /// Seconds of this epoch so far, and the estimate of what is left of it.
    public var epochSeconds: Double
    public var remainingSeconds: Double
    public var peakResidentBytes: Int
    public var runtimePeakBytes: Int
}

/// An epoch's results.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var test: EvaluationResult
    public var seconds: Double
    public var imagesPerSecond: Double
    public var peakResidentBytes: Int
    public var runtimePeakBytes: Int
}

/// Receives a run's progress (the command line's progress bar; nothing in tests).
public protocol TrainingObserver: AnyObject {
    func message(_ text: String)
    func step(_ progress: StepProgress)
    func evaluating(batch: Int, of batches: Int)
    func epochFinished(_ report: EpochReport)
}

/// A progress bar on a terminal (one line, redrawn at most ten times a second), plain log
/// lines (about ten per epoch) when standard output is not a terminal.
public final class ConsoleProgress: TrainingObserver {
    public let isTerminal: Bool
    private var lastDraw = 0.0
    private var barShown = false

    public init(isTerminal: Bool = isatty(STDOUT_FILENO) != 0) {
        self.isTerminal = isTerminal
    }

    public func message(_ text: String) {
        clearBar()
        print(text)
        fflush(stdout)
    }

    public func step(_ p: StepProgress) {
        let now = Date().timeIntervalSinceReferenceDate
        let last = p.stepInEpoch == p.stepsPerEpoch
        if isTerminal {
            guard last || now - lastDraw >= 0.1 else { return }
            lastDraw = now
            let width = 20
            let filled = p.stepsPerEpoch == 0 ? 0 : width * p.stepInEpoch / p.stepsPerEpoch
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            print("\r\u{1B}[2Kepoch \(p.epoch)/\(p.epochs) \(bar) " + line(p), terminator: "")
            barShown = true
            fflush(stdout)
        } else {
            let interval = max(1, p.stepsPerEpoch / 10)
            guard last || p.stepInEpoch == 1 || p.stepInEpoch % interval == 0 || now - lastDraw >= 30 else { return }
            lastDraw = now
            print("epoch \(p.epoch)/\(p.epochs) " + line(p))
            fflush(stdout)
        }
    }

    func line(_ p: StepProgress) -> String {
        "\(p.stepInEpoch)/\(p.stepsPerEpoch) loss \(String(format: "%.4f", p.loss))"
            + " (avg \(String(format: "%.4f", p.epochLoss))) acc \(String(format: "%.1f%%", 100 * p.epochAccuracy))"
            + " | \(String(format: "%.1f", p.imagesPerSecond)) img/s"
            + " | \(ConsoleProgress.clock(p.epochSeconds))<\(ConsoleProgress.clock(p.remainingSeconds))"
            + " | lr \(String(format: "%.4g", p.learningRate))"
            + " | peak RSS \(ConsoleProgress.bytes(p.peakResidentBytes)), tensors \(ConsoleProgress.bytes(p.runtimePeakBytes))"
    }

    public func evaluating(batch: Int, of batches: Int) {
        guard isTerminal else { return }
        let now = Date().timeIntervalSinceReferenceDate
        guard batch == batches || now - lastDraw >= 0.1 else { return }
        lastDraw = now
        print("\r\u{1B}[2K  evaluating the test set \(batch)/\(batches)", terminator: "")
        barShown = true
        fflush(stdout)
    }

    public func epochFinished(_ r: EpochReport) {
        clearBar()
        print("epoch \(r.epoch)/\(r.epochs): train loss \(String(format: "%.4f", r.trainLoss))"
              + " acc \(String(format: "%.2f%%", 100 * r.trainAccuracy))"
              + " | test loss \(String(format: "%.4f", r.test.loss)) acc \(String(format: "%.2f%%", 100 * r.test.accuracy))"
              + " (\(r.test.examples) images)"
              + " | \(ConsoleProgress.clock(r.seconds)), \(String(format: "%.1f", r.imagesPerSecond)) img/s"
              + " | peak RSS \(ConsoleProgress.bytes(r.peakResidentBytes)), tensors \(ConsoleProgress.bytes(r.runtimePeakBytes))")
        fflush(stdout)
    }

    private func clearBar() {
        if barShown && isTerminal { print("\r\u{1B}[2K", terminator: "") }
        barShown = false
    }

    /// "1:02:03" or "02:03".
    public static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%02d:%02d", s / 60, s % 60)
    }

    /// "812 MiB" or "1.23 GiB".
    public static func bytes(_ n: Int) -> String {
        let gib = Double(n) / 1_073_741_824
        return gib >= 1 ? String(format: "%.2f GiB", gib) : Memory.format(n)
    }
}

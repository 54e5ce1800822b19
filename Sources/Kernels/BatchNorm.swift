import Foundation
import Runtime

/// Batch normalisation over channel-major activations, with an optional fused ReLU.
///
/// x is any contiguous `(C, ...)` tensor, typically `(C, N, H, W)` or a channel view of a block
/// buffer: channel c is the contiguous row of the `columns = N·H·W` elements `x[c, ...]`, so the
/// statistics are reductions over contiguous rows and the work is split across threads by
/// channels. Statistics are taken in two passes (mean, then squared deviations from it) with
/// Float vector partial sums over blocks of 512 added in Double, so rows of millions of elements
/// with a large mean stay accurate. Each channel's row is normalised right after its statistics
/// are taken, while it is still in cache.
public enum BatchNorm {
    /// Checks the shapes shared by every entry point; returns (channels, columns).
    static func check(_ name: String, _ x: Tensor, _ perChannel: [(String, Tensor)], sameAsX: [(String, Tensor)]) -> (Int, Int) {
        precondition(x.rank >= 1 && x.isContiguous, "BatchNorm.\(name): x \(x.shape) must be a contiguous (C, ...) tensor")
        let channels = x.shape[0]
        let columns = channels == 0 ? 0 : x.count / channels
        for (label, t) in perChannel {
            precondition(t.count == channels && t.isContiguous,
                         "BatchNorm.\(name): \(label) \(t.shape) vs x \(x.shape): need \(channels) contiguous values")
        }
        for (label, t) in sameAsX {
            precondition(t.shape == x.shape && t.isContiguous, "BatchNorm.\(name): \(label) \(t.shape) vs x \(x.shape)")
        }
        return (channels, columns)
    }

    /// Training mode: per-channel batch mean and invStd = 1/sqrt(biased var + eps) over all
    /// non-channel positions, written into mean (C) and invStd (C); y = gamma·(x−mean)·invStd + beta,
    /// then max(·,0) if relu. x may be any contiguous (C, ...) tensor. Does NOT touch running stats.
    /// y may be x (in place).
    // x, y (C, N, H, W); gamma, beta, mean, invStd (C).
    public static func forwardTraining(_ x: Tensor, gamma: Tensor, beta: Tensor, eps: Float, relu: Bool,
                                       into y: Tensor, mean: Tensor, invStd: Tensor) {
        forwardTraining(concatenating: [x], gamma: gamma, beta: beta, eps: eps, relu: relu, into: y, mean: mean, invStd: invStd)
    }

    /// `forwardTraining` of the concatenation of `xs` along channels, read where the pieces lie:
    /// the same numbers as concatenating first (each channel's row is read and normalised by the
    /// same code), without the concatenated tensor or the pass that would write it.
    // xs[i] (C_i, N, H, W); y (ΣC_i, N, H, W); gamma, beta, mean, invStd (ΣC_i).
    public static func forwardTraining(concatenating xs: [Tensor], gamma: Tensor, beta: Tensor, eps: Float, relu: Bool,
                                       into y: Tensor, mean: Tensor, invStd: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let (channels, columns) = check("forwardTraining", y, [("gamma", gamma), ("beta", beta), ("mean", mean),
                                                              ("invStd", invStd)], sameAsX: [])
        precondition(columns > 0, "BatchNorm.forwardTraining: y \(y.shape) has no positions per channel")
        let rows = ChannelRows("forwardTraining", xs, like: y)
        if DryRun.isActive { return }
        let py = y.pointer, pg = gamma.pointer, pb = beta.pointer
        let pm = mean.pointer, pi = invStd.pointer
        Elementwise.forRanges(channels, unitCost: 3 * columns) { cs in
            for c in cs {
                let row = rows[c]
                (pm[c], pi[c]) = rowStatistics(row, columns: columns, eps: eps)
                applyStatistics(x: row, channels: 1, columns: columns, ld: columns, gamma: pg + c, beta: pb + c,
                                mean: pm + c, invStd: pi + c, relu: relu, y: py + c * columns, yLd: columns)
            }
        }
    }

    /// Training-mode statistics alone: per-channel batch mean and invStd = 1/sqrt(biased var + eps),
    /// the same values `forwardTraining` computes, for a consumer that normalises as it reads
    /// (Conv2d+NormalizedInput.swift). Does NOT touch running stats.
    // x (C, N, H, W); mean, invStd (C).
    public static func trainingStatistics(_ x: Tensor, eps: Float, mean: Tensor, invStd: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let (channels, columns) = check("trainingStatistics", x, [("mean", mean), ("invStd", invStd)], sameAsX: [])
        precondition(columns > 0, "BatchNorm.trainingStatistics: x \(x.shape) has no positions per channel")
        if DryRun.isActive { return }
        let px = x.pointer, pm = mean.pointer, pi = invStd.pointer
        Elementwise.forRanges(channels, unitCost: 2 * columns) { cs in
            for c in cs { (pm[c], pi[c]) = rowStatistics(px + c * columns, columns: columns, eps: eps) }
        }
    }

    /// One channel's (mean, invStd): two passes, the mean in Double and the squared deviations
    /// about its Float rounding, corrected (Σ(x−center)² = Σ(x−mu)² + n·(mu−center)²).
    @inline(__always)
    static func rowStatistics(_ row: UnsafePointer<Float>, columns: Int, eps: Float) -> (Float, Float) {
        let mu = Elementwise.sumDouble(row, columns) / Double(columns)
        let center = Float(mu)
        let offset = mu - Double(center)
        let variance = max(Elementwise.sumSquaredDeviations(row, columns, center: center) / Double(columns)
                           - offset * offset, 0)
        return (center, Float(1 / (variance + Double(eps)).squareRoot()))
    }

    /// y = gamma·(x−mean)·invStd + beta (+ReLU) with the statistics given (used for recompute, and
    /// for evaluation after converting running stats). y may be x.
    // x, y (C, N, H, W); gamma, beta, mean, invStd (C).
    public static func forwardWithStatistics(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                             invStd: Tensor, relu: Bool, into y: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let (channels, columns) = check("forwardWithStatistics", x, [("gamma", gamma), ("beta", beta), ("mean", mean),
                                                                    ("invStd", invStd)], sameAsX: [("y", y)])
        if DryRun.isActive { return }
        applyStatistics(x: x.pointer, channels: channels, columns: columns, ld: columns, gamma: gamma.pointer,
                        beta: beta.pointer, mean: mean.pointer, invStd: invStd.pointer, relu: relu,
                        y: y.pointer, yLd: columns)
    }

    /// Evaluation mode with running statistics: y = gamma·(x−runningMean)/sqrt(runningVar+eps) + beta.
    // x, y (C, N, H, W); gamma, beta, runningMean, runningVar (C).
    public static func forwardInference(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                                        runningVar: Tensor, eps: Float, relu: Bool, into y: Tensor) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        let (channels, columns) = check("forwardInference", x, [("gamma", gamma), ("beta", beta),
                                                               ("runningMean", runningMean), ("runningVar", runningVar)],
                                        sameAsX: [("y", y)])
        if DryRun.isActive { return }
        let px = x.pointer, py = y.pointer, pg = gamma.pointer, pb = beta.pointer
        let pm = runningMean.pointer, pv = runningVar.pointer
        Elementwise.forRanges(channels, unitCost: 2 * columns) { cs in
            for c in cs {
                let inv = Float(1 / (Double(pv[c]) + Double(eps)).squareRoot())
                normalizeRow(x: px + c * columns, count: columns, mean: pm[c], scale: pg[c] * inv, beta: pb[c],
                             relu: relu, y: py + c * columns)
            }
        }
    }

    /// PyTorch's update: running = (1−momentum)·running + momentum·batch, using the UNBIASED batch
    /// variance (var·n/(n−1)) for runningVar; var is recovered from invStd and eps. count = n.
    // runningMean, runningVar, mean, invStd (C).
    public static func updateRunningStatistics(runningMean: Tensor, runningVar: Tensor, mean: Tensor,
                                               invStd: Tensor, eps: Float, momentum: Float, count: Int) {
        let channels = runningMean.count
        for (label, t) in [("runningVar", runningVar), ("mean", mean), ("invStd", invStd)] {
            precondition(t.count == channels && t.isContiguous && runningMean.isContiguous,
                         "BatchNorm.updateRunningStatistics: \(label) \(t.shape) vs runningMean \(runningMean.shape)")
        }
        precondition(count > 1, "BatchNorm.updateRunningStatistics: count \(count): the unbiased variance needs more than 1 value per channel")
        if DryRun.isActive { return }
        let prm = runningMean.pointer, prv = runningVar.pointer, pm = mean.pointer, pi = invStd.pointer
        let m = Double(momentum), bessel = Double(count) / Double(count - 1)
        for c in 0..<channels {
            let inv = Double(pi[c])
            let variance = max(1 / (inv * inv) - Double(eps), 0)
            prm[c] = Float((1 - m) * Double(prm[c]) + m * Double(pm[c]))
            prv[c] = Float((1 - m) * Double(prv[c]) + m * variance * bessel)
        }
    }

    /// Evaluation-mode statistics from the running ones: mean = runningMean and
    /// invStd = 1/sqrt(runningVar + eps), for `forwardWithStatistics` and its backward.
    // runningMean, runningVar, mean, invStd (C).
    public static func evaluationStatistics(runningMean: Tensor, runningVar: Tensor, eps: Float,
                                            mean: Tensor, invStd: Tensor) {
        let channels = runningMean.count
        for (label, t) in [("runningMean", runningMean), ("runningVar", runningVar), ("mean", mean), ("invStd", invStd)] {
            precondition(t.count == channels && t.isContiguous,
                         "BatchNorm.evaluationStatistics: \(label) \(t.shape) vs runningMean \(runningMean.shape)")
        }
        mean.assign(runningMean)
        if DryRun.isActive { return }
        let pv = runningVar.pointer, pi = invStd.pointer
        for c in 0..<channels { pi[c] = 1 / (pv[c] + eps).squareRoot() }
    }

    /// Training-mode backward through batch statistics (and through the ReLU when relu: its mask is
    /// recomputed from x and the statistics, so y need not be kept). Accumulates into dx, dGamma,
    /// dBeta; with `overwriteDx`, writes dx instead, never reading it (a gradient buffer nothing
    /// was added to yet, which then needs no zeroing). Runs the raw tile functions one channel at
    /// a time, so the channel's dy and x rows are still in cache for the second pass.
    // dy, x, dx (C, N, H, W); gamma, beta, mean, invStd, dGamma, dBeta (C).
    public static func backward(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, invStd: Tensor,
                                relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?, overwriteDx: Bool = false) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        backward("backward", dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                 dx: dx, dGamma: dGamma, dBeta: dBeta, fixedStatistics: false, overwriteDx: overwriteDx)
    }

    /// Backward with the statistics held constant (evaluation mode): dx += gamma·invStd·g (dx =
    /// with `overwriteDx`), dGamma += Σ g·xhat, dBeta += Σ g.
    // dy, x, dx (C, N, H, W); gamma, beta, mean, invStd, dGamma, dBeta (C).
    public static func backwardWithFixedStatistics(_ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                                                   invStd: Tensor, relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?,
                                                   overwriteDx: Bool = false) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        backward("backwardWithFixedStatistics", dy, x: x, gamma: gamma, beta: beta, mean: mean, invStd: invStd,
                 relu: relu, dx: dx, dGamma: dGamma, dBeta: dBeta, fixedStatistics: true, overwriteDx: overwriteDx)
    }

    /// `backward` of `forwardTraining(concatenating:)`: x and dx in pieces along channels, each
    /// dx piece (nil: no gradient wanted) written (`overwriting[i]`) or accumulated into where it
    /// lies, by the same per-channel code as `backward`, so with the same numbers.
    // dy (ΣC_i, N, H, W); xs[i], dxs[i] (C_i, N, H, W); gamma, beta, mean, invStd, dGamma, dBeta (ΣC_i).
    public static func backward(_ dy: Tensor, concatenating xs: [Tensor], gamma: Tensor, beta: Tensor, mean: Tensor,
                                invStd: Tensor, relu: Bool, dxs: [Tensor?], overwriting: [Bool],
                                dGamma: Tensor?, dBeta: Tensor?) {
        let span = Profile.begin(.batchNormReLU); defer { Profile.end(span) }
        backward("backward", dy, xs: xs, gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                 dxs: dxs, overwriting: overwriting, dGamma: dGamma, dBeta: dBeta, fixedStatistics: false)
    }

    static func backward(_ name: String, _ dy: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor,
                         invStd: Tensor, relu: Bool, dx: Tensor?, dGamma: Tensor?, dBeta: Tensor?,
                         fixedStatistics: Bool, overwriteDx: Bool) {
        backward(name, dy, xs: [x], gamma: gamma, beta: beta, mean: mean, invStd: invStd, relu: relu,
                 dxs: [dx], overwriting: [overwriteDx], dGamma: dGamma, dBeta: dBeta, fixedStatistics: fixedStatistics)
    }

    static func backward(_ name: String, _ dy: Tensor, xs: [Tensor], gamma: Tensor, beta: Tensor, mean: Tensor,
                         invStd: Tensor, relu: Bool, dxs: [Tensor?], overwriting: [Bool], dGamma: Tensor?, dBeta: Tensor?,
                         fixedStatistics: Bool) {
        var perChannel = [("gamma", gamma), ("beta", beta), ("mean", mean), ("invStd", invStd)]
        if let dGamma { perChannel.append(("dGamma", dGamma)) }
        if let dBeta { perChannel.append(("dBeta", dBeta)) }
        let (channels, columns) = check(name, dy, perChannel, sameAsX: [])
        precondition(dxs.count == xs.count && overwriting.count == xs.count,
                     "BatchNorm.\(name): \(xs.count) pieces of x, \(dxs.count) of dx, \(overwriting.count) overwrite flags")
        let rows = ChannelRows(name, xs, like: dy)
        for (x, dx) in zip(xs, dxs) where dx != nil {
            precondition(dx!.shape == x.shape && dx!.isContiguous, "BatchNorm.\(name): dx \(dx!.shape) vs x \(x.shape)")
        }
        let gradientRows = ChannelRows(dxs, overwriting: overwriting, channels: xs.map { $0.shape[0] })
        let wantsDx = dxs.contains { $0 != nil }
        let needSums = dGamma != nil || dBeta != nil || (wantsDx && !fixedStatistics)
        if columns == 0 || (!needSums && !wantsDx) || DryRun.isActive { return }
        let pdy = dy.pointer, pg = gamma.pointer, pb = beta.pointer
        let pm = mean.pointer, pi = invStd.pointer
        let pdg = dGamma?.pointer, pdb = dBeta?.pointer
        Elementwise.forRanges(channels, unitCost: (needSums ? 2 : 0) * columns + (wantsDx ? 4 : 0) * columns) { cs in
            for c in cs {
                let offset = c * columns, x = rows[c]
                var sums: (dy: Float, dyXhat: Float) = (0, 0)
                if needSums {
                    accumulateBackwardSums(dy: pdy + offset, x: x, channels: 1, columns: columns, ld: columns,
                                           gamma: pg + c, beta: pb + c, mean: pm + c, invStd: pi + c, relu: relu,
                                           sumDy: &sums.dy, sumDyXhat: &sums.dyXhat)
                    pdg?[c] += sums.dyXhat
                    pdb?[c] += sums.dy
                }
                guard let (dx, overwrite) = gradientRows.gradient(c) else { continue }
                // With fixed statistics the mean and variance carry no gradient: zero totals leave
                // dx += gamma·invStd·g.
                var totals = fixedStatistics ? (dy: Float(0), dyXhat: Float(0)) : sums
                accumulateInputGradient(dy: pdy + offset, x: x, channels: 1, columns: columns, ld: columns,
                                        gamma: pg + c, beta: pb + c, mean: pm + c, invStd: pi + c, relu: relu,
                                        sumDy: &totals.dy, sumDyXhat: &totals.dyXhat, count: columns,
                                        dx: dx, dxLd: columns, overwrite: overwrite)
            }
        }
    }
}

/// Where each channel's row lies when a channel-major tensor arrives as pieces along channels
/// (a dense layer's inputs, never concatenated): one pointer per channel, and for a gradient
/// whether that row is written or added to. In a dry run the pieces are only checked.
struct ChannelRows {
    private var rows: [UnsafeMutablePointer<Float>?] = []
    private var overwrite: [Bool] = []

    /// The rows of `pieces`, which together must have `whole`'s shape.
    init(_ name: String, _ pieces: [Tensor], like whole: Tensor) {
        precondition(!pieces.isEmpty, "BatchNorm.\(name): no input pieces")
        for piece in pieces {
            precondition(piece.rank == whole.rank && piece.shape.dropFirst() == whole.shape.dropFirst() && piece.isContiguous,
                         "BatchNorm.\(name): input piece \(piece.shape) does not fit \(whole.shape) along channels")
        }
        let channels = pieces.reduce(0) { $0 + $1.shape[0] }
        precondition(channels == whole.shape[0],
                     "BatchNorm.\(name): input pieces of \(pieces.map { $0.shape[0] }) channels, \(whole.shape[0]) expected")
        self.init(pieces, overwriting: pieces.map { _ in false }, channels: pieces.map { $0.shape[0] })
    }

    /// The rows of gradient `pieces` of `channels[i]` channels each (nil: not wanted).
    init(_ pieces: [Tensor?], overwriting: [Bool], channels: [Int]) {
        guard !DryRun.isActive else { return }
        let total = channels.reduce(0, +)
        rows.reserveCapacity(total)
        overwrite.reserveCapacity(total)
        for ((piece, write), count) in zip(zip(pieces, overwriting), channels) {
            let base = piece?.pointer, columns = piece.map { $0.count / max(count, 1) } ?? 0
            for c in 0..<count {
                rows.append(base.map { $0 + c * columns })
                overwrite.append(write)
            }
        }
    }

    subscript(channel: Int) -> UnsafeMutablePointer<Float> { rows[channel]! }

    /// Channel `channel`'s gradient row and whether to write it, or nil.
    func gradient(_ channel: Int) -> (row: UnsafeMutablePointer<Float>, overwrite: Bool)? {
        rows[channel].map { ($0, overwrite[channel]) }
    }
}

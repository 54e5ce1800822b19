import Foundation
import Runtime

/// The tiled paths, for every convolution but the plain 1x1 one: per-tap products for stride 1
/// with Wo = W (Conv2d+Shifted.swift), im2col tiles for the rest (Conv2d+Im2col.swift).
///
/// OpenBLAS's own threads are slow on DenseNet's thin products (Cout = 12 output rows, see
/// ../shared/reference/machine-notes.md), so each of our threads runs one-thread OpenBLAS on its own part with its
/// own column tile: forward splits the output columns; backward splits either the input
/// channels (each thread owns rows of the im2col matrix, so its dx channels and dW columns are
/// its own) or whole images (col2im of different images never overlaps; dW gets per-thread
/// partial sums added at the end), or, where the thin kernel gathers dx, ranges of positions.
extension Conv2d {
    /// How a backward pass is shared among threads.
    public enum BackwardSplit: String, Equatable, Sendable {
        /// Each thread owns input channels: its rows of cols, dx and dW columns. No partials.
        case channels
        /// Each thread owns whole images (output columns of whole images); dW partials.
        case images
        /// Each thread owns any output column range: with no dx, or a dx the thin kernel gathers
        /// position by position (nothing scattered across ranges); dW partials.
        case columns
    }

    /// Columns per tile of one thread, whose tile holds `rows` rows: about `preferredTileBytes`,
    /// never over the thread's share of `workspaceLimitBytes`, at least one.
    static func tileColumns(rows: Int, threads: Int) -> Int {
        let share = workspaceLimitBytes / max(threads, 1) - Memory.alignment   // byteCount rounds up
        let byLimit = share / (rows * MemoryLayout<Float>.stride)
        let preferred = max(preferredTileBytes / (rows * MemoryLayout<Float>.stride), 64)
        return max(1, min(byLimit, preferred))
    }

    /// Below this many multiply-adds (Cout·Cin·kh·kw·N·Ho·Wo) a call runs on one thread: a
    /// second thread would cost more than it saves. Tests set it to 0 to run the split paths on
    /// tiny shapes.
    nonisolated(unsafe) public static var parallelWorkThreshold = 1 << 18

    // MARK: Forward

    /// y[:, tile] = W (Cout × Cin·kh·kw) · im2col(x)[:, tile] (or its per-tap form), tile by tile;
    /// each thread takes a contiguous range of output columns. // x (Cin, N, H, W) → y (Cout, N, Ho, Wo)
    static func tiledForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, _ g: ConvGeometry,
                             y: UnsafeMutablePointer<Float>) {
        let parts = forwardParts(g, threads: Parallel.threadCount)
        let rows = g.rows, total = g.columns
        let tapMajor = makesTapMajorWeights(g, multipliesByWeights: true)
        // Thin 3x3: our register-blocked kernel in the same scratch (Conv2d+Microkernel.swift).
        let thin = tapMajor && thinKernelApplies(g, outputs: g.cout) && thinKernelFits(g, inputs: g.cin, parts: parts) {
            forwardWorkspace(g, parts: parts, columns: Parallel.chunk($0, of: parts, count: total).count)
        }
        let taps = !tapMajor ? nil : thin ? thinKernelWeights(weight, g, inputGradient: false) : tapMajorWeights(weight, g)
        let tapWeights = taps.map { UnsafePointer($0.pointer) }
        Parallel.forEach(parts) { t in
            let range = Parallel.chunk(t, of: parts, count: total)
            let (workRows, width) = forwardWorkspace(g, parts: parts, columns: range.count)
            guard width > 0 else { return }
            let workspace = Tensor(shape: [workRows, width], category: .scratch)
            let cols = workspace.pointer
            if thin {
                thinForward(x, packed: tapWeights!, g, columns: range, pad: cols, y: y)
                withExtendedLifetime(workspace) {}
                return
            }
            var start = range.lowerBound
            while start < range.upperBound {
                let tileRange = start..<min(start + width, range.upperBound)
                if let tapWeights {
                    shiftedForward(x, tapWeights: tapWeights, g, columns: tileRange, z: cols, y: y)
                } else {
                    im2col(x, g, channels: 0..<g.cin, columns: tileRange, into: cols)
                    Gemm.sgemm(m: g.cout, n: tileRange.count, k: rows, a: weight, lda: rows,
                               b: cols, ldb: tileRange.count, beta: 0, c: y + start, ldc: total)
                }
                start = tileRange.upperBound
            }
            withExtendedLifetime(workspace) {}
        }
        withExtendedLifetime(taps) {}
    }

    /// Preferred columns per tile of the per-tap path (measured with bench-kernels: 1024–4096
    /// were within noise of each other on 3x3 48→12 and 128→32).
    static let shiftedTileColumns = 2048

    /// Columns per tile of the per-tap path, whose workspace holds only `rows` (a few Cout) rows:
    /// long tiles make long products; never over the thread's share of the workspace limit.
    static func shiftedTileWidth(rows: Int, threads: Int) -> Int {
        let share = workspaceLimitBytes / max(threads, 1) - Memory.alignment
        return max(1, min(share / (rows * MemoryLayout<Float>.stride), shiftedTileColumns))
    }

    // Planning: the functions below decide how a tiled call splits its work and what scratch
    // it holds. The kernels and the scratch-size queries (Conv2d+Workspace.swift, used by the
    // memory planner) both call them, so the two cannot drift apart.

    /// Threads (parts) the tiled forward splits the output columns into.
    static func forwardParts(_ g: ConvGeometry, threads: Int) -> Int {
        let work = g.cout * g.rows * g.columns
        return work < parallelWorkThreshold ? 1 : min(threads, g.columns)
    }

    /// Workspace of one forward thread that owns `columns` output columns: the per-tap path
    /// sums the masked kernel columns into Cout rows (`z`), the im2col path gathers Cin·kh·kw
    /// rows; `columns` 0 means the thread has no work and allocates nothing.
    static func forwardWorkspace(_ g: ConvGeometry, parts: Int, columns: Int) -> (rows: Int, columns: Int) {
        if g.hasUnitStrideRows { return (g.cout, min(shiftedTileWidth(rows: g.cout, threads: parts), columns)) }
        return (g.rows, min(tileColumns(rows: g.rows, threads: parts), columns))
    }

    // MARK: Backward

    /// How `backward` shares the im2col path among `Parallel.threadCount` threads for these
    /// shapes (tests check that each split is exercised; benchmarks print it).
    public static func backwardSplit(input: [Int], weight: [Int], _ p: ConvParameters, inputGradient: Bool) -> BackwardSplit {
        let g = ConvGeometry(input: input, weight: weight, p)
        return p.isPointwise ? .columns : backwardPlan(g, threads: Parallel.threadCount, inputGradient: inputGradient).0
    }

    /// The split and number of parts for a backward pass.
    static func backwardPlan(_ g: ConvGeometry, threads: Int, inputGradient: Bool) -> (BackwardSplit, parts: Int) {
        let work = g.cout * g.rows * g.columns
        if threads == 1 || work < parallelWorkThreshold { return (.columns, 1) }
        if !inputGradient { return (.columns, min(threads, g.columns)) }
        // Whole images give each thread the longest products, which the per-tap path prefers
        // (3x3 48→12 backward: 9.4 ms by images, 9.6–10.7 by channels), but they balance only
        // when they divide evenly (3 images on 2 threads would leave one idle a third of the
        // time). Channels balance whenever there are several per thread.
        if g.hasUnitStrideRows && g.n % threads == 0 { return (.images, threads) }
        // The thin kernel gathers each dx position from dy (Conv2d+Microkernel.swift), so threads
        // may own any range of positions: all balanced, and the kernel for dx, which the channel
        // split (per-tap products) would not use. DenseNet-121 at batch 8 on 16 threads (or 3).
        if g.columns >= 64 * threads && thinInputGradientApplies(g)
            && thinKernelFits(g, inputs: g.cout, parts: threads, workspace: { t in
                backwardWorkspace(g, channels: g.cin, parts: threads, columns: Parallel.chunk(t, of: threads, count: g.columns).count)
            }) {
            return (.columns, threads)
        }
        if g.cin >= 4 * threads || (g.cin >= threads && g.n % threads != 0) { return (.channels, min(threads, g.cin)) }
        if g.n >= threads { return (.images, threads) }
        if g.cin >= threads { return (.channels, threads) }
        return (.columns, 1)
    }

    /// Input channels and output columns owned by backward part `t` of `parts`.
    static func backwardPart(_ t: Int, of parts: Int, split: BackwardSplit, _ g: ConvGeometry)
        -> (channels: Range<Int>, columns: Range<Int>) {
        switch split {
        case .channels: return (Parallel.chunk(t, of: parts, count: g.cin), 0..<g.columns)
        case .images:
            let images = Parallel.chunk(t, of: parts, count: g.n), plane = g.ho * g.wo
            return (0..<g.cin, (images.lowerBound * plane)..<(images.upperBound * plane))
        case .columns: return (0..<g.cin, Parallel.chunk(t, of: parts, count: g.columns))
        }
    }

    /// Shape (count, Cout·Cin·kh·kw) of a backward pass's dW partial sums, count 0 for none:
    /// the im2col path adds thread 0's straight into dW and the others' into partials (split by
    /// images or columns); the per-tap path always accumulates tap-major, in one buffer when
    /// threads own channels (disjoint columns of it) or one per thread.
    static func backwardPartialShape(_ g: ConvGeometry, split: BackwardSplit, parts: Int, weightGradient: Bool) -> [Int] {
        let count = !weightGradient ? 0
            : g.hasUnitStrideRows ? (split == .channels ? 1 : parts)
            : (split == .channels ? 0 : parts - 1)
        return [count, g.cout * g.rows]
    }

    /// Workspace of one backward thread that owns `channels` input channels and `columns`
    /// output columns: the per-tap path's masked copies of dy (`maskedRows`), or the im2col
    /// rows of its channels.
    static func backwardWorkspace(_ g: ConvGeometry, channels: Int, parts: Int, columns: Int) -> (rows: Int, columns: Int) {
        if g.hasUnitStrideRows {
            let rows = maskedRows(g)
            return (rows, min(shiftedTileWidth(rows: rows, threads: parts), columns))
        }
        let rows = channels * g.kernelArea
        return (rows, min(tileColumns(rows: rows, threads: parts), columns))
    }

    /// dx += col2im(Wᵀ · dy) (dx = with `overwriteDx`), dW += dy · im2col(x)ᵀ, tile by tile.
    /// // dy (Cout, N, Ho, Wo), x and dx (Cin, N, H, W), dW (Cout, Cin, kh, kw)
    static func tiledBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                              overwriteDx: Bool = false) {
        let (split, parts) = backwardPlan(g, threads: Parallel.threadCount, inputGradient: dx != nil)
        let area = g.kernelArea, rows = g.rows, total = g.columns
        // Stride 1 with Wo = W: per-tap products (Conv2d+Shifted.swift), dW accumulated tap-major.
        let shifted = g.hasUnitStrideRows
        let tapMajor = makesTapMajorWeights(g, multipliesByWeights: dx != nil)
        // Thin 3x3 input gradient by our kernel when threads own whole images or ranges of
        // positions (or one thread does all), in the same scratch (Conv2d+Microkernel.swift).
        let thin = tapMajor && split != .channels && thinInputGradientApplies(g)
            && thinKernelFits(g, inputs: g.cout, parts: parts) { t in
                let (channels, columns) = backwardPart(t, of: parts, split: split, g)
                if channels.isEmpty || columns.isEmpty { return (0, 0) }
                return backwardWorkspace(g, channels: channels.count, parts: parts, columns: columns.count)
            }
        // Ranges of positions with a dx only where the kernel gathers it (backwardPlan checked).
        precondition(split != .columns || dx == nil || parts == 1 || thin,
                     "Conv2d.tiledBackward: a column split with dx needs the thin kernel (\(g.cin)->\(g.cout), \(parts) parts)")
        // Thin 3x3 weight gradient by our kernel into the same per-thread partials, in the same
        // workspaces (Conv2d+Microkernel.swift).
        let thinGradient = shifted && dWeight != nil && thinWeightGradientApplies(g)
            && thinWeightGradientFits(g, parts: parts) { t in
                let (channels, columns) = backwardPart(t, of: parts, split: split, g)
                if channels.isEmpty || columns.isEmpty { return (0, 0, 0) }
                let (rows, width) = backwardWorkspace(g, channels: channels.count, parts: parts, columns: columns.count)
                return (channels.count, rows, width)
            }
        if thinGradient { thinWeightGradientCalls += 1 }
        let taps = !tapMajor ? nil : thin ? thinKernelWeights(weight, g, inputGradient: true) : tapMajorWeights(weight, g)
        let tapWeights = taps.map { UnsafePointer($0.pointer) }
        let partialShape = backwardPartialShape(g, split: split, parts: parts, weightGradient: dWeight != nil)
        let partialCount = partialShape[0]
        let partials = partialCount > 0 ? Tensor.zeros(partialShape, category: .scratch) : nil
        let partial = partials?.pointer
        // The thin kernel gathers each dx position whole, so it writes a dx to overwrite; the
        // scatter of the other paths adds tap by tap, onto zeros then.
        if overwriteDx && !thin, let dx { Parallel.fill(dx, count: g.cin * g.inputColumns, with: 0) }

        Parallel.forEach(parts) { t in
            let (channels, columns) = backwardPart(t, of: parts, split: split, g)
            guard !channels.isEmpty && !columns.isEmpty else { return }
            let ownRows = channels.count * area, firstRow = channels.lowerBound * area
            // This thread's dW block.
            var dW: UnsafeMutablePointer<Float>? = nil
            if let dWeight {
                if shifted { dW = partial! + (split == .channels ? 0 : t) * g.cout * rows }
                else if t > 0 && split != .channels { dW = partial! + (t - 1) * g.cout * rows }
                else { dW = dWeight + firstRow }
            }
            let (workRows, width) = backwardWorkspace(g, channels: channels.count, parts: parts, columns: columns.count)
            let workspace = Tensor(shape: [workRows, width], category: .scratch)
            let cols = workspace.pointer
            // The tiles below run what the kernels do not: dx, dW or both.
            let tiled = (dx != nil && !thin) || (dW != nil && !thinGradient)
            var start = tiled ? columns.lowerBound : columns.upperBound
            while start < columns.upperBound {
                let tile = start..<min(start + width, columns.upperBound)
                let dyTile = dy + start
                if shifted {
                    shiftedBackward(dy, x: x, tapWeights: thin ? nil : tapWeights, g, channels: channels, columns: tile,
                                    masked: cols, tapGrad: thinGradient ? nil : dW, dx: thin ? nil : dx)
                    start = tile.upperBound
                    continue
                }
                if let dW {
                    // dW[:, own rows] += dy[:, tile] · colsᵀ   (Cout × ownRows, inner dimension tile)
                    im2col(x, g, channels: channels, columns: tile, into: cols)
                    Gemm.sgemm(transB: true, m: g.cout, n: ownRows, k: tile.count, a: dyTile, lda: total,
                               b: cols, ldb: tile.count, beta: 1, c: dW, ldc: rows)
                }
                if let dx {
                    // cols = W[:, own rows]ᵀ · dy[:, tile], then scattered back onto dx.
                    Gemm.sgemm(transA: true, m: ownRows, n: tile.count, k: g.cout, a: weight + firstRow, lda: rows,
                               b: dyTile, ldb: total, beta: 0, c: cols, ldc: tile.count)
                    col2imAccumulate(cols, g, channels: channels, columns: tile, into: dx)
                }
                start = tile.upperBound
            }
            if thin, let dx {
                thinInputGradient(dy, packed: tapWeights!, g, columns: columns, pad: cols, dx: dx, accumulate: !overwriteDx)
            }
            if thinGradient, let dW {
                thinWeightGradient(dy, x: x, g, channels: channels, columns: columns, pad: cols, padFloats: workRows * width,
                                   tapGrad: dW)
            }
            withExtendedLifetime(workspace) {}
        }

        if let partial, let dWeight {
            if shifted {
                addTapMajor(partial, count: partialCount, g, into: dWeight)
            } else {
                Parallel.addPartials(partial, count: partialCount, rows: g.cout, columns: rows, into: dWeight, ldc: rows)
            }
        }
        withExtendedLifetime(partials) {}
        withExtendedLifetime(taps) {}
    }
}

import Runtime

/// Concatenation along dimension 0 (channels). With channel-major tensors each input is one
/// contiguous block of the output, so this is a sequence of copies (split across threads by
/// output range, not by input, so a few small inputs next to a large one still use both cores).
public enum Concat {
    /// Checks that `parts` stack along dim 0 into `whole`; returns each part's element offset.
    static func offsets(_ parts: [[Int]], into whole: Tensor, _ name: String) -> [Int] {
        precondition(whole.isContiguous, "Concat.\(name): y \(whole.shape) must be contiguous")
        precondition(whole.rank >= 1, "Concat.\(name): y \(whole.shape) has no dimension 0")
        var offsets = [Int]()
        var channels = 0
        let inner = Array(whole.shape.dropFirst())
        let innerCount = inner.reduce(1, *)
        for s in parts {
            precondition(s.count == whole.rank && Array(s.dropFirst()) == inner,
                         "Concat.\(name): part \(s) does not match y \(whole.shape) beyond dimension 0 (parts \(parts))")
            offsets.append(channels * innerCount)
            channels += s[0]
        }
        precondition(channels == whole.shape[0], "Concat.\(name): parts \(parts) have \(channels) channels, y \(whole.shape) has \(whole.shape[0])")
        return offsets
    }

    /// Concatenates `xs` along dim 0 (channels) into y.
    public static func forward(_ xs: [Tensor], into y: Tensor) {
        let span = Profile.begin(.concatCopy); defer { Profile.end(span) }
        let offsets = offsets(xs.map(\.shape), into: y, "forward")
        for x in xs { precondition(x.isContiguous, "Concat.forward: input \(x.shape) must be contiguous") }
        if DryRun.isActive { return }
        let py = y.pointer
        let sources = xs.map { UnsafePointer($0.pointer) }
        let counts = xs.map(\.count)
        Elementwise.forRanges(y.count) { r in
            for k in sources.indices {
                let lo = max(r.lowerBound, offsets[k]), hi = min(r.upperBound, offsets[k] + counts[k])
                if lo < hi, sources[k] + (lo - offsets[k]) != UnsafePointer(py + lo) {
                    (py + lo).update(from: sources[k] + (lo - offsets[k]), count: hi - lo)
                }
            }
        }
        withExtendedLifetime(xs) {}
    }

    /// dxs[i] += the matching channel slice of dy (nil entries skipped); dxs[i] = it where
    /// `overwriting[i]` (a gradient buffer nothing was added to yet, its contents never read;
    /// empty: none).
    ///
    /// A nil entry's channel count is not known, so it is inferred: this works when every nil
    /// entry comes after the last non-nil one, or when there is exactly one nil entry. Otherwise
    /// use `backward(_:dxs:channels:)`.
    public static func backward(_ dy: Tensor, dxs: [Tensor?], overwriting: [Bool] = []) {
        let span = Profile.begin(.concatCopy); defer { Profile.end(span) }
        let lastKnown = dxs.lastIndex { $0 != nil } ?? -1
        let nilsBefore = dxs[..<max(lastKnown, 0)].filter { $0 == nil }.count
        let nilsTotal = dxs.filter { $0 == nil }.count
        precondition(nilsBefore == 0 || nilsTotal == 1,
                     "Concat.backward: the channel counts of \(nilsTotal) nil gradients before the last given one cannot be inferred from dy \(dy.shape); pass channels:")
        let knownChannels = dxs.reduce(0) { $0 + ($1?.shape[0] ?? 0) }
        let channels = dxs.map { $0?.shape[0] ?? (nilsBefore == 1 ? dy.shape[0] - knownChannels : 0) }
        let endsWithNil = !dxs.isEmpty && dxs[dxs.count - 1] == nil
        backward(dy, dxs: dxs, channels: channels, trailingMayBeShort: endsWithNil, overwriting: overwriting)
    }

    /// dxs[i] += channels `channels[i]` wide slice of dy, in order (nil entries skipped).
    public static func backward(_ dy: Tensor, dxs: [Tensor?], channels: [Int]) {
        let span = Profile.begin(.concatCopy); defer { Profile.end(span) }
        backward(dy, dxs: dxs, channels: channels, trailingMayBeShort: false, overwriting: [])
    }

    static func backward(_ dy: Tensor, dxs: [Tensor?], channels: [Int], trailingMayBeShort: Bool, overwriting: [Bool]) {
        precondition(dxs.count == channels.count, "Concat.backward: \(dxs.count) gradients, \(channels.count) channel counts")
        precondition(overwriting.isEmpty || overwriting.count == dxs.count,
                     "Concat.backward: \(overwriting.count) overwrite flags for \(dxs.count) gradients")
        precondition(dy.isContiguous && dy.rank >= 1, "Concat.backward: dy \(dy.shape) must be contiguous")
        let inner = Array(dy.shape.dropFirst())
        let innerCount = inner.reduce(1, *)
        var channel = 0
        // Each wanted gradient's element range in dy, in order.
        var slices = [(start: Int, count: Int, dx: UnsafeMutablePointer<Float>, overwrite: Bool)]()
        for (index, (dx, width)) in zip(dxs, channels).enumerated() {
            if let dx {
                precondition(dx.isContiguous, "Concat.backward: dx \(dx.shape) must be contiguous")
                precondition(dx.shape[0] == width && Array(dx.shape.dropFirst()) == inner && channel + width <= dy.shape[0],
                             "Concat.backward: dx \(dx.shape) does not fit dy \(dy.shape) at channel \(channel) (channels \(channels))")
                if dx.count > 0 {
                    slices.append((channel * innerCount, dx.count, dx.pointer, !overwriting.isEmpty && overwriting[index]))
                }
            }
            channel += width
        }
        precondition(channel == dy.shape[0] || (trailingMayBeShort && channel < dy.shape[0]),
                     "Concat.backward: gradients \(dxs.map { $0?.shape }) with channels \(channels) do not cover dy \(dy.shape)")
        guard !DryRun.isActive, !slices.isEmpty else { return }
        // One region over dy's span, split by elements as the forward is: a dense layer's input has
        // as many slices as earlier layers, each of k channels, too small alone to split (at 16
        // threads most ran on one thread, one region each).
        // The same gradient given twice (a concatenation of one tensor with itself) takes its
        // slices one region after the other, in order: split together, two threads could add
        // to (or one write over) the same elements at once.
        let distinct = Set(slices.map(\.dx)).count == slices.count
        let pdy = UnsafePointer(dy.pointer)
        for group in distinct ? [slices[...]] : slices.indices.map({ slices[$0...$0] }) {
            let base = group.first!.start, end = group.last!.start + group.last!.count
            Elementwise.forRanges(end - base) { part in
                let r = (part.lowerBound + base)..<(part.upperBound + base)
                for slice in group {
                    let lo = max(r.lowerBound, slice.start), hi = min(r.upperBound, slice.start + slice.count)
                    guard lo < hi else { continue }
                    if slice.overwrite {
                        (slice.dx + (lo - slice.start)).update(from: pdy + lo, count: hi - lo)
                    } else {
                        Elementwise.accumulateRange(pdy + lo, into: slice.dx + (lo - slice.start), 0..<(hi - lo), scale: 1)
                    }
                }
            }
        }
        withExtendedLifetime(dxs) {}
    }
}

/// The share of every global batch that one rank of a data-parallel job takes: consecutive
/// positions of the batch, as even as possible (the first `count % rankCount` ranks take one
/// example more), so that rank 0's slice, then rank 1's, … put back together are the global
/// batch in its order. Every rank shuffles with the same seed (`DataLoader.order(epoch:)`) and
/// draws augmentation by global position, so slicing changes no example and no draw.
///
/// With unequal slices the mean of the ranks' per-slice mean losses is not the global batch's
/// mean; a rank whose loss is the mean over its slice weights it by `lossScale(batchCount:)`,
/// and averaging the gradients over the ranks then gives the global batch's gradient.
public struct RankSlice: Equatable, Sendable {
    public let rank: Int
    public let rankCount: Int

    /// The whole batch: one process.
    public static let whole = RankSlice(rank: 0, rankCount: 1)

    public init(rank: Int, rankCount: Int) {
        precondition(rankCount > 0 && rank >= 0 && rank < rankCount,
                     "RankSlice: rank \(rank) is not one of \(rankCount) ranks")
        self.rank = rank
        self.rankCount = rankCount
    }

    /// The positions of this rank's examples within a batch of `count`; empty when the batch
    /// has fewer examples than there are ranks and this rank comes after them.
    public func range(inBatchOf count: Int) -> Range<Int> {
        precondition(count >= 0, "RankSlice: negative batch size \(count)")
        let base = count / rankCount, extra = count % rankCount
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// rankCount · (slice size) / count: the weight of this rank's mean loss such that the
    /// average over ranks of the weighted gradients is the gradient of the global batch's mean
    /// loss. 1 for equal slices; 0 for an empty slice.
    public func lossScale(batchCount count: Int) -> Float {
        guard count > 0 else { return 0 }
        return Float(rankCount * range(inBatchOf: count).count) / Float(count)
    }
}

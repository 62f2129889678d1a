/// Which dataset indices each MPI rank visits in an epoch, decided identically on every rank
/// without communication.
public struct DistributedSampler: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Shuffled by (seed, epoch), padded by wrapping around so every rank gets the same number
        /// of samples and batches.
        case training
        /// Every sample exactly once across ranks, in order, no padding (ranks may differ by one).
        case evaluation
    }

    public let count: Int
    public let rank: Int
    public let worldSize: Int
    public let seed: UInt64
    public let mode: Mode

    public init(count: Int, rank: Int = 0, worldSize: Int = 1, seed: UInt64, mode: Mode = .training) {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize, "DistributedSampler: rank \(rank) of \(worldSize)")
        precondition(count >= 0)
        self.count = count; self.rank = rank; self.worldSize = worldSize; self.seed = seed; self.mode = mode
    }

    /// Samples per rank: the same on every rank in training; in evaluation the largest rank's share
    /// (use `indices(epoch:).count` for this rank's own).
    public var samplesPerRank: Int { (count + worldSize - 1) / worldSize }

    /// One global permutation from (seed, epoch), the same on all ranks.
    public func globalPermutation(epoch: Int) -> [Int] {
        var rng = SplitMix64(seed, UInt64(truncatingIfNeeded: epoch), 0x5A3)
        return rng.permutation(count)
    }

    /// This rank's indices: `perm[rank], perm[rank + world], ...` over the padded permutation
    /// (training), or `rank, rank + world, ...` (evaluation).
    public func indices(epoch: Int) -> [Int] {
        guard count > 0 else { return [] }
        switch mode {
        case .evaluation:
            return Array(stride(from: rank, to: count, by: worldSize))
        case .training:
            let permutation = globalPermutation(epoch: epoch)
            let padded = samplesPerRank * worldSize
            return stride(from: rank, to: padded, by: worldSize).map { permutation[$0 % count] }
        }
    }

    /// This rank's share of `positions` in the epoch's sample stream (training, elastic resume).
    /// The stream is the epoch's permutation repeated (position p is sample `perm[p % count]`);
    /// rank r takes positions `from + r, from + r + world, ...`. With a global batch G that is a
    /// multiple of the world size, optimizer step s covers positions `s·G ..< (s+1)·G` whatever the
    /// world size, so a run resumed on other ranks at a step boundary visits the same samples.
    public func indices(epoch: Int, positions: Range<Int>) -> [Int] {
        guard count > 0, !positions.isEmpty else { return [] }
        let permutation = globalPermutation(epoch: epoch)
        return stride(from: positions.lowerBound + rank, to: positions.upperBound, by: worldSize).map { permutation[$0 % count] }
    }

    /// Batches per epoch, the same on every rank in both modes (in evaluation the last batches of
    /// some ranks may be short or empty), so collective operations per batch stay matched.
    public func batchesPerEpoch(batchSize: Int, dropLast: Bool = false) -> Int {
        precondition(batchSize > 0)
        return dropLast && mode == .training ? samplesPerRank / batchSize : (samplesPerRank + batchSize - 1) / batchSize
    }
}

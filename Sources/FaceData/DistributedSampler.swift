/// Which dataset indices each MPI rank visits in an epoch, decided identically on every rank
/// without communication.
///
/// Training follows one stream per epoch, a shuffled permutation of the dataset; global step s
/// takes its positions s·G ..< (s+1)·G (G = batch × ranks), whatever the number of ranks. Within
/// a step the ranks split those samples by home: sample i's home is rank i mod ranks, and a rank
/// takes the samples it is home to first. Each rank's cache of decoded faces (`CachedDataset`)
/// then sees mostly the same faces every epoch: with a plain strided split (PyTorch's
/// DistributedSampler) a rank meets a new random share of the dataset each epoch, so on 2 ranks
/// half its faces were still uncached in the second epoch and an eighth in the fourth, each
/// decoded on the cores that train (and on 16 ranks a sixteenth of the dataset every epoch for
/// dozens of epochs). Which rank takes a sample does not change a step's gradient sum, only the
/// order of additions, and every rank's batch is still a random draw (BatchNorm statistics).
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
    /// Samples per rank per step in training: the split by home works one global batch at a time.
    public let batchSize: Int

    public init(count: Int, rank: Int = 0, worldSize: Int = 1, seed: UInt64, mode: Mode = .training, batchSize: Int = 1) {
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize, "DistributedSampler: rank \(rank) of \(worldSize)")
        precondition(count >= 0 && batchSize >= 1)
        self.count = count; self.rank = rank; self.worldSize = worldSize; self.seed = seed; self.mode = mode
        self.batchSize = batchSize
    }

    /// Samples per rank: the same on every rank in training; in evaluation the largest rank's share
    /// (use `indices(epoch:).count` for this rank's own).
    public var samplesPerRank: Int { (count + worldSize - 1) / worldSize }

    /// One global permutation from (seed, epoch), the same on all ranks.
    public func globalPermutation(epoch: Int) -> [Int] {
        var rng = SplitMix64(seed, UInt64(truncatingIfNeeded: epoch), 0x5A3)
        return rng.permutation(count)
    }

    /// This rank's indices: its share (see `indices(epoch:positions:)`) of the epoch's permutation,
    /// padded by wrapping around to a multiple of the world size (training), or `rank, rank + world,
    /// ...` (evaluation).
    public func indices(epoch: Int) -> [Int] {
        guard count > 0 else { return [] }
        switch mode {
        case .evaluation:
            return Array(stride(from: rank, to: count, by: worldSize))
        case .training:
            return indices(epoch: epoch, positions: 0 ..< samplesPerRank * worldSize)
        }
    }

    /// This rank's share of `positions` in the epoch's sample stream (training, elastic resume).
    /// The stream is the epoch's permutation repeated (position p is sample `perm[p % count]`).
    /// `positions` is cut into windows of one global batch (batchSize × world positions from its
    /// start); in each window every rank takes as many samples as a strided split would give it
    /// (positions `start + r, start + r + world, ...`): first the samples it is home to, in stream
    /// order, then the ones left over after every rank took its own, in stream order, lowest rank
    /// first. So optimizer step s covers positions `s·G ..< (s+1)·G` whatever the world size, and a
    /// run resumed on other ranks at a step boundary visits the same samples.
    public func indices(epoch: Int, positions: Range<Int>) -> [Int] {
        guard count > 0, !positions.isEmpty else { return [] }
        let permutation = globalPermutation(epoch: epoch)
        if worldSize == 1 { return positions.map { permutation[$0 % count] } }
        var mine: [Int] = []
        mine.reserveCapacity((positions.count + worldSize - 1) / worldSize)
        var owner = [Int](repeating: -1, count: batchSize * worldSize)
        var quota = [Int](repeating: 0, count: worldSize)
        for start in stride(from: positions.lowerBound, to: positions.upperBound, by: batchSize * worldSize) {
            let size = min(batchSize * worldSize, positions.upperBound - start)
            for r in 0 ..< worldSize { quota[r] = r < size ? (size - r + worldSize - 1) / worldSize : 0 }
            for k in 0 ..< size {
                let home = permutation[(start + k) % count] % worldSize
                owner[k] = quota[home] > 0 ? home : -1
                if owner[k] >= 0 { quota[home] -= 1 }
            }
            var r = 0
            for k in 0 ..< size where owner[k] < 0 {
                while quota[r] == 0 { r += 1 }
                owner[k] = r
                quota[r] -= 1
            }
            for k in 0 ..< size where owner[k] == rank { mine.append(permutation[(start + k) % count]) }
        }
        return mine
    }

    /// Batches per epoch, the same on every rank in both modes (in evaluation the last batches of
    /// some ranks may be short or empty), so collective operations per batch stay matched.
    public func batchesPerEpoch(batchSize: Int, dropLast: Bool = false) -> Int {
        precondition(batchSize > 0)
        return dropLast && mode == .training ? samplesPerRank / batchSize : (samplesPerRank + batchSize - 1) / batchSize
    }
}

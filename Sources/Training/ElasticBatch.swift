/// The global batch of a run (samples per optimizer step over all ranks) is what the optimizer and
/// the learning-rate schedule see; the world size is only how the work is split. A checkpoint keeps
/// the global batch, and a resume on another number of ranks recomputes the split.
public enum ElasticBatch {
    /// Per-rank batch and accumulation steps that make `globalBatch` on `worldSize` ranks, using at
    /// most `maxBatch` samples per pass (the checkpoint's per-rank batch: what fitted in memory)
    /// and as few accumulation steps as possible. Throws when the ranks cannot share it evenly.
    public static func split(globalBatch: Int, worldSize: Int, maxBatch: Int) throws -> (batch: Int, accumulate: Int) {
        guard globalBatch % worldSize == 0 else {
            let divisors = (1 ... globalBatch).filter { globalBatch % $0 == 0 }.map(String.init).joined(separator: ", ")
            throw TrainingFailure("the checkpoint's global batch \(globalBatch) cannot be split evenly over \(worldSize) ranks, so the run could not continue with the same optimizer steps; resume on \(divisors) ranks")
        }
        let perRank = globalBatch / worldSize
        let accumulate = (1 ... perRank).first { perRank % $0 == 0 && perRank / $0 <= max(1, maxBatch) } ?? perRank
        return (perRank / accumulate, accumulate)
    }

    /// Optimizer steps in an epoch of `samples` samples: every step takes a full global batch (the
    /// last one wraps around to the epoch's first samples), capped by `--steps-per-epoch`.
    public static func stepsPerEpoch(samples: Int, globalBatch: Int, cap: Int?) -> Int {
        let steps = max(1, (samples + globalBatch - 1) / max(1, globalBatch))
        return min(steps, cap ?? steps)
    }
}

import FaceData
import Foundation

/// How a run is driven (as opposed to what is trained, which is `TrainConfig`).
public struct RunOptions {
    public var outDirectory: URL
    /// Write a checkpoint every this many optimizer steps (nil: at each epoch's end only).
    public var checkpointEverySteps: Int? = nil
    /// Write a checkpoint at the end of every this many epochs (and always after the last).
    public var checkpointEveryEpochs = 1
    public var keep = 3
    /// Initial weights (e.g. imported torchvision ResNet-50), loaded non-strictly; the model's output
    /// layer (`ModelSpec.headPrefixes`: ResNet's fc, facenet's fc1, U-Net's final conv, ...) is not loaded.
    public var initWeights: String? = nil
    public var threads = 1
    /// Where `threads` came from (printed at start): "--threads", "OPENBLAS_NUM_THREADS", the affinity mask...
    public var threadsSource = "--threads"
    /// Start each gradient bucket's allreduce as soon as backward has finished it (same bits as without).
    public var overlap = true
    /// ZeRO stage 1: each rank keeps AdamW state for its slice of the parameters only (`ShardedOptimizer`).
    public var shardOptimizer = false
    /// `--recompute blocks`: each block of the model frees its inside after forward and runs it
    /// again in backward (`Recomputation`): same bits, less memory, one more forward.
    public var recompute = false
    /// Gradient bucket size for the allreduce.
    public var bucketBytes = GradientSync.defaultBucketBytes
    /// Seconds between the allreduce progress thread's calls during backward (nil: no thread).
    public var progressInterval: Double? = GradientSync.defaultProgressInterval
    /// Abort the job when the gradient allreduce waits this long for a rank (nil: wait forever).
    public var stallTimeout: Double? = defaultStallTimeout
    /// Ten minutes: longer than any step or checkpoint write, shorter than a wasted allocation.
    public static let defaultStallTimeout = 600.0
    /// Signals that stop the run gracefully: checkpoint at the next step, exit `Preemption.exitStatus`.
    public var preemptSignals = Preemption.defaultSignals
    public var quiet = false
    public var strict = false
    public var pictures = true
    /// Write a TensorBoard event file into the run folder (rank 0).
    public var tensorBoard = true
    /// Stop after this many optimizer steps in total (tests, exact-resume checks).
    public var stopAfterSteps: Int? = nil
    /// Background threads preparing batches (decode, augment, heatmaps).
    public var loaderThreads = 1
    /// The loader threads' nice value (`--loader-nice`). 19 lets them take only the cycles the ranks'
    /// computation leaves, for jobs with more threads than cores. Measured on facenet b32, 2 ranks
    /// of 1 thread on 2 cores, 5 alternating runs: median step 83.4 ms at 19 against 86.2 ms at 0,
    /// within this VM's noise, so the default leaves the priority alone.
    public var loaderNice = defaultLoaderNice
    public static let defaultLoaderNice: Int32 = 0
    /// Decoded faces kept in memory per rank, in MiB.
    public var cacheMegabytes = TrainingData.defaultCacheBytes >> 20
    /// Images claiming more pixels in their header are bad samples (`--max-pixels`).
    public var maxPixels = ImageCodec.defaultMaxPixels

    public init(outDirectory: URL) { self.outDirectory = outDirectory }
}

public struct TrainingFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a run ended (errors are thrown).
public enum RunOutcome: Equatable, Sendable {
    case finished
    /// `--stop-after-steps` reached (tests, exact-resume checks); no checkpoint is added.
    case stoppedAfterSteps
    /// A preemption signal reached `ranks` ranks; a checkpoint at `step` was written.
    case preempted(step: Int, ranks: Int)
}

import ArgumentParser
import Foundation
import SwiftMPI
import Training

// Option groups shared by the commands (as `ImageLimitOptions`): each option is declared, checked
// and defaulted in one place, so `train`, `eval`, `predict` and `bench train` spell and treat it alike.

/// `--threads`: threads per rank for the engine's pool (OpenBLAS runs single-threaded per piece).
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads per rank for the engine's loops and GEMM tiles (default: OPENBLAS_NUM_THREADS, else the cores this rank may use).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    /// The thread count and where it came from (printed by train).
    var resolved: (threads: Int, source: String) {
        if let threads { return (threads, "--threads") }
        let budget = ThreadBudget.defaultThreads()
        return (budget.threads, budget.reason)
    }
}

/// An input size: `WxH` (160x120) or `N` for a square N×N.
struct InputSize: ExpressibleByArgument {
    var width: Int, height: Int

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard (1 ... 2).contains(parts.count), parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        (width, height) = (parts[0]!, parts.last!!)
    }

    static var defaultValueDescription: String { "WxH or N" }
}

/// `--input-size` (default: the preset's or model's).
struct InputSizeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Input size WxH (e.g. 160x120), or N for N×N.", valueName: "size"))
    var inputSize: InputSize?
}

/// The gradient allreduce's bucket size and progress thread (train and bench train under mpirun).
struct BucketOptions: ParsableArguments {
    @Option(help: "Gradient bucket size in MB for the allreduce (PyTorch DDP's bucket_cap_mb).")
    var bucketMb: Double = Double(GradientSync.defaultBucketBytes) / 1_048_576

    @Option(help: "Milliseconds between a helper thread's MPI progress calls while backward computes, so that overlapped buckets keep moving (Open MPI has no asynchronous progress over TCP); 0: none.")
    var mpiProgressMs: Double = GradientSync.defaultProgressInterval * 1000

    func validate() throws {
        guard bucketMb > 0, bucketMb <= 4096 else { throw ValidationError("--bucket-mb must be in (0, 4096]") }
        guard mpiProgressMs >= 0, mpiProgressMs <= 1000 else { throw ValidationError("--mpi-progress-ms must be in [0, 1000]") }
    }

    var bucketBytes: Int { max(4, Int(bucketMb * 1_048_576)) }
    var progressInterval: Double? { mpiProgressMs > 0 ? mpiProgressMs / 1000 : nil }

    /// Initialises MPI with the thread level the progress thread needs (call before `MPI.world`).
    func initializeMPI() throws {
        try MPI.initialize(threadLevel: progressInterval != nil ? .multiple : .funneled)
    }
}

/// The data-parallel options of `train` under mpirun.
struct DistributedOptions: ParsableArguments {
    @OptionGroup var bucket: BucketOptions

    @Flag(inversion: .prefixedNo, help: "Start each gradient bucket's allreduce while backward goes on (same results either way).")
    var overlap = true

    @Flag(inversion: .prefixedNo, help: "Shard AdamW's state across ranks (ZeRO stage 1): 1/N of it per rank, same weights as plain data parallelism. Gradients are reduce-scattered after backward, so --overlap does not apply.")
    var shardOptimizer = false

    @Option(help: "Abort the job when the gradient allreduce waits this many seconds for a rank, naming the missing ranks (0: wait forever).")
    var stallTimeout: Double = RunOptions.defaultStallTimeout

    func validate() throws {
        guard stallTimeout >= 0 else { throw ValidationError("--stall-timeout must be 0 (off) or a number of seconds") }
    }

    /// Puts these options into a run's options.
    func apply(to options: inout RunOptions) {
        options.bucketBytes = bucket.bucketBytes
        options.progressInterval = bucket.progressInterval
        options.overlap = overlap
        options.shardOptimizer = shardOptimizer
        options.stallTimeout = stallTimeout > 0 ? stallTimeout : nil
    }
}

/// `--checkpoint` of the commands that use a trained model.
struct CheckpointOptions: ParsableArguments {
    @Option(help: "Checkpoint: a *.safetensors.zst file, a run folder (its latest checkpoint) or its 'latest' file.")
    var checkpoint: String
}

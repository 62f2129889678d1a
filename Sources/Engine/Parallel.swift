import COpenBLAS
import Synchronization

/// Thread settings. The engine's one `WorkerPool` runs everything in parallel: element-wise loops
/// split with `chunks`, GEMMs split into fixed tiles (BLAS.swift), convolutions into column blocks.
/// OpenBLAS itself always runs one thread per call, on whichever pool thread calls it.
public enum Parallel {
    /// The current pool, swapped under a lock: a caller that took the old one keeps it alive (and
    /// its threads working) until its `run` returns; then it is freed and its threads joined.
    private static let current = Mutex(WorkerPool(threads: 1))
    public static var pool: WorkerPool { current.withLock { $0 } }
    public static var threads: Int { pool.threads }

    /// Sets the thread count of the engine (its pool; OpenBLAS stays single-threaded per call).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(1)
        current.withLock { pool in
            if max(1, n) != pool.threads { pool = WorkerPool(threads: n) }
        }
    }

    /// Below this many element-operations a piece costs more to hand out than it saves.
    public static let minimumWork = 32_768

    /// Calls `body(start, end)` on disjoint chunks covering 0..<count, in parallel when the work
    /// (count × cost per item, in element-operations) is large enough. Chunk boundaries depend on
    /// the thread count: bodies must give the same result for any split (no cross-item sums).
    @inlinable
    public static func chunks(_ count: Int, work: Int, _ body: (Int, Int) -> Void) {
        let pool = self.pool
        let parts = min(pool.threads, count, max(1, work / minimumWork))
        if parts <= 1 {
            body(0, count)
            return
        }
        pool.run(pieces: parts) { part, _ in
            let start = count * part / parts
            let end = count * (part + 1) / parts
            if start < end { body(start, end) }
        }
    }
}

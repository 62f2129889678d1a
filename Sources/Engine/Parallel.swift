import COpenBLAS
import Dispatch

/// Thread settings: OpenBLAS runs the GEMMs; element-wise work that is large enough is split
/// into `threads` chunks with `Parallel.chunks`.
public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads = 1

    /// Sets the thread count for OpenBLAS and for the engine's own loops.
    public static func setThreads(_ n: Int) {
        threads = max(1, n)
        openblas_set_num_threads(Int32(threads))
    }

    /// Below this many elements, splitting costs more than it saves.
    public static let minimumWork = 32_768

    /// Calls `body(start, end)` on disjoint chunks covering 0..<count, in parallel when the work
    /// (count × cost per item, in element-operations) is large enough.
    @inlinable
    public static func chunks(_ count: Int, work: Int, _ body: (Int, Int) -> Void) {
        let parts = min(threads, count, max(1, work / minimumWork))
        if parts <= 1 {
            body(0, count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let start = count * part / parts
            let end = count * (part + 1) / parts
            if start < end { body(start, end) }
        }
    }
}

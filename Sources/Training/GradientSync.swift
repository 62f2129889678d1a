import Engine
import Models
import SwiftMPI

/// Averages gradients across ranks (data parallelism), like PyTorch DDP and Horovod: the flat
/// gradient buffer is cut into fixed-size buckets from its end (the last layers' gradients are the
/// first ones backward finishes), each bucket is summed with a non-blocking allreduce, and the
/// sums are scaled by 1/world. Buckets are started in the same order on every rank (a mismatch
/// would hang the job) and have the same bounds whenever they start, so the result is the same
/// bits with or without overlap.
///
/// Overlap (`beginOverlap` ... `finish`): containers report each child whose backward is done
/// (`Context.backwardProgress`); parameters are declared in forward order, so once a module is
/// done every parameter from its first one to the end of the buffer is final, and the buckets
/// inside that range start at once, while backward goes on. Each report also tests the pending
/// requests, which is what moves them forward (MPI progresses inside MPI calls), and between
/// reports a progress thread drives MPI while a layer computes (Open MPI has no asynchronous
/// progress over TCP: without it, a bucket's transfer stalls for the length of a convolution).
public final class GradientSync {
    public let communicator: Communicator
    public let bucketElements: Int
    private var grads = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    /// Buckets not started yet, the next one to start last: [start, end) offsets, ascending.
    private var waiting: [Range<Int>] = []
    private var requests: [Request] = []
    private var failure: Error?
    /// Each module's first parameter offset (its subtree's, by PyTorch name prefix); nil: none.
    private var firstOffset: [ObjectIdentifier: Int] = [:]
    private weak var hooked: Context?
    private var watchdog: StallWatchdog?
    /// The optimizer step being averaged (named in stall reports).
    public var step = 0
    /// Drives the buckets forward while backward computes a layer (nil: only at module boundaries).
    public let progress: ProgressThread?

    /// DDP's default bucket (bucket_cap_mb = 25).
    public static let defaultBucketBytes = 25 << 20
    /// How often the progress thread drives MPI while backward runs (`--mpi-progress-ms`). On 2
    /// namespace hosts at 1 Gbit/s (resnet50 b8, 1 thread per rank, 3 rounds) it hid 79 % of the
    /// allreduce against 55 % without, and weak scaling went from 77 % to 87 %; every 0.2 ms hid
    /// as much but took more of the cores from the computation.
    public static let defaultProgressInterval = 0.001

    /// `progressInterval`: seconds between the progress thread's calls, for an overlapped sync on
    /// ranks of more than one node; it needs MPI_THREAD_MULTIPLE (`MPI.initialize`), and without
    /// it (or with nil) the buckets move only when backward reports a module done. Collective.
    public init(communicator: Communicator, bucketBytes: Int = defaultBucketBytes, progressInterval: Double? = nil) throws {
        self.communicator = communicator
        bucketElements = max(1, bucketBytes / MemoryLayout<Float>.size)
        // Only across nodes: between the ranks of one node shared memory moves the buckets in
        // microseconds, and the thread only takes time from the computation (facenet b32 on 2
        // ranks of one node: weak scaling 94.8 % without, 91.7 % with).
        // (Every rank evaluates the same conditions, so all or none call the collective.)
        if let progressInterval, communicator.size > 1, MPI.grantedThreadLevel == .multiple,
           try communicator.ranksOnThisNode() < communicator.size {
            progress = try ProgressThread(interval: progressInterval)
        } else {
            progress = nil
        }
    }

    /// Waits for the gradient allreduce under `watchdog` (nil: waits forever), which aborts the job
    /// naming the ranks that have not arrived (see `StallWatchdog`).
    func watchForStalls(_ watchdog: StallWatchdog?) {
        self.watchdog = watchdog
    }

    /// Sums `grads` over all ranks and divides by the world size, in place.
    public func average(_ grads: UnsafeMutableBufferPointer<Float>) throws {
        begin(grads)
        try finish()
    }

    /// Starts an overlapped averaging of `network`'s gradients: call before its (last) backward,
    /// then `finish()` after it.
    public func beginOverlap(_ network: Network) {
        if firstOffset.isEmpty { firstOffset = GradientSync.firstOffsets(network) }
        begin(network.store.grads)
        guard communicator.size > 1 else { return }
        hooked = network.context
        network.context.backwardProgress = { [unowned self] module in
            if let first = self.firstOffset[ObjectIdentifier(module)] { self.start(from: first) }
        }
        progress?.resume()
    }

    /// Starts what has not started, waits for every bucket, and scales by 1/world.
    public func finish() throws {
        hooked?.backwardProgress = nil
        hooked = nil
        progress?.pause()
        defer { requests.removeAll(); waiting.removeAll() }
        guard communicator.size > 1, grads.count > 0 else { return }
        start(from: 0)
        if let watchdog { try watchdog.wait("step \(step)'s gradient allreduce") { requests } } else { for request in requests { try request.wait() } }
        if let failure { self.failure = nil; throw failure }
        let scale = 1 / Float(communicator.size)
        let base = grads.baseAddress!
        Parallel.chunks(grads.count, work: grads.count) { s, e in
            for i in s ..< e { base[i] *= scale }
        }
    }

    private func begin(_ grads: UnsafeMutableBufferPointer<Float>) {
        self.grads = grads
        requests.removeAll()
        waiting.removeAll()
        var end = grads.count
        while end > 0 {
            let start = max(0, end - bucketElements)
            waiting.insert(start ..< end, at: 0)
            end = start
        }
    }

    /// Starts every waiting bucket that lies at or after `offset`, then drives the pending ones.
    private func start(from offset: Int) {
        guard failure == nil else { return }
        do {
            while let bucket = waiting.last, bucket.lowerBound >= offset {
                waiting.removeLast()
                requests.append(try communicator.iallreduce(UnsafeMutableBufferPointer(rebasing: grads[bucket]), op: .sum))
            }
            for request in requests where !request.isComplete { _ = try request.test() }
        } catch {
            failure = error
        }
    }

    /// Module → the lowest offset among the parameters of its subtree. Parameter names are the
    /// module paths (PyTorch's state_dict names), so a module owns the names under its path.
    static func firstOffsets(_ network: Network) -> [ObjectIdentifier: Int] {
        var result: [ObjectIdentifier: Int] = [:]
        let parameters = network.store.parameters
        func visit(_ module: Module, path: String) {
            let prefix = path.isEmpty ? "" : path + "."
            if let first = parameters.filter({ $0.name.hasPrefix(prefix) }).map(\.offset).min() {
                result[ObjectIdentifier(module)] = first
            }
            for child in module.children { visit(child.module, path: prefix + child.name) }
        }
        visit(network.root, path: "")
        return result
    }
}

import Engine
import SwiftMPI

/// Averages gradients across ranks (data parallelism), like PyTorch DDP and Horovod: the flat
/// gradient buffer is cut into fixed-size buckets, all buckets are started as non-blocking
/// allreduces in the same order on every rank (a mismatch would hang the job), then waited on
/// and scaled by 1/world. Buckets let MPI pipeline the transfers instead of one huge message.
public final class GradientSync {
    public let communicator: Communicator
    public let bucketElements: Int

    /// `bucketBytes`: DDP's default is 25 MB.
    public init(communicator: Communicator, bucketBytes: Int = 25 << 20) {
        self.communicator = communicator
        bucketElements = max(1, bucketBytes / MemoryLayout<Float>.size)
    }

    /// Sums `grads` over all ranks and divides by the world size, in place.
    public func average(_ grads: UnsafeMutableBufferPointer<Float>) throws {
        let world = communicator.size
        guard world > 1, grads.count > 0 else { return }
        var requests: [Request] = []
        // Reverse order: the last layers' gradients are the first ones backward finishes.
        var end = grads.count
        while end > 0 {
            let start = max(0, end - bucketElements)
            requests.append(try communicator.iallreduce(UnsafeMutableBufferPointer(rebasing: grads[start ..< end]), op: .sum))
            end = start
        }
        for request in requests { try request.wait() }
        let scale = 1 / Float(world)
        let base = grads.baseAddress!
        Parallel.chunks(grads.count, work: grads.count) { s, e in
            for i in s ..< e { base[i] *= scale }
        }
    }

    /// Averages a few scalars (metrics) over ranks, weighted by `weight` (e.g. samples seen).
    public func weightedMean(_ values: [Double], weight: Double) throws -> [Double] {
        guard communicator.size > 1 else { return values }
        var packed = values.map { $0 * weight } + [weight]
        try communicator.allreduce(&packed, op: .sum)
        let total = packed.removeLast()
        return packed.map { total > 0 ? $0 / total : 0 }
    }
}

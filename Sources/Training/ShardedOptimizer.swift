import Checkpoints
import Engine
import Foundation
import SwiftMPI

/// `--shard-optimizer` (ZeRO stage 1): each rank keeps AdamW's moments for one contiguous slice of
/// the flat parameter buffer only, so optimizer state costs 1/N per rank. A step becomes
/// reduce-scatter of the gradients (each rank receives the sum of its slice), the AdamW update of
/// that slice, and an allgather of the parameters: the same bytes on the wire as one allreduce.
///
/// Same weights as plain data parallelism: AdamW is element-wise (weight decay included), and each
/// gradient element is the sum over ranks scaled by 1/N as `GradientSync` does it. With 2 ranks
/// that sum is one addition, a + b = b + a, so the bits are the same. With more ranks MPI may add
/// the N terms in another order in MPI_Reduce_scatter than in MPI_Allreduce (each picks its own
/// algorithm), so weights agree to float rounding, not necessarily to the bit.
final class ShardedOptimizer {
    let communicator: Communicator
    /// Elements per rank, in rank order; rank r's slice starts where rank r − 1's ends.
    let counts: [Int]
    /// This rank's slice of the parameter buffer.
    let slice: Range<Int>
    /// Every rank's slice, in rank order.
    private let slices: [Range<Int>]
    /// The buffers go through MPI in pieces of this many elements (`--bucket-mb`): OpenMPI's
    /// reduce-scatter allocates temporaries the size of the whole buffer it is given, which on the
    /// whole gradient would cost more than the moments sharding saves.
    let bucketElements: Int

    init(communicator: Communicator, parameterCount: Int, bucketBytes: Int) {
        self.communicator = communicator
        counts = ShardedOptimizer.counts(total: parameterCount, ranks: communicator.size)
        var start = 0
        slices = counts.map { n in defer { start += n }; return start ..< start + n }
        slice = slices[communicator.rank]
        bucketElements = max(1, bucketBytes / MemoryLayout<Float>.stride)
    }

    /// The buckets of the buffer and, for each, how many of its elements each rank's slice holds:
    /// slices are contiguous and in rank order, so within a bucket they are too.
    private var buckets: [(range: Range<Int>, counts: [Int])] {
        stride(from: 0, to: slices.last!.upperBound, by: bucketElements).map { start in
            let range = start ..< min(start + bucketElements, slices.last!.upperBound)
            return (range, slices.map { max(0, min($0.upperBound, range.upperBound) - max($0.lowerBound, range.lowerBound)) })
        }
    }

    /// `total` cut into `ranks` contiguous slices that differ by at most one element (the first
    /// `total % ranks` ranks take one more).
    static func counts(total: Int, ranks: Int) -> [Int] {
        (0 ..< ranks).map { total / ranks + ($0 < total % ranks ? 1 : 0) }
    }

    /// The largest slice: what one rank's AdamW moments cover (the memory plan's figure).
    static func sliceElements(total: Int, ranks: Int) -> Int { (total + ranks - 1) / ranks }

    /// Leaves the averaged gradient of this rank's slice in `grads[slice]`; the rest of `grads`
    /// holds partial sums afterwards and must not be read (the trainer zeroes it after the step).
    func averageGradients(_ grads: UnsafeMutableBufferPointer<Float>) throws {
        let base = grads.baseAddress!
        for (range, counts) in buckets {
            try communicator.reduceScatter(UnsafeMutableBufferPointer(rebasing: grads[range]), counts: counts, op: .sum)
            // MPI leaves this rank's part at the start of the bucket; move it to its place in the layout.
            let mine = max(range.lowerBound, slice.lowerBound)
            if mine > range.lowerBound && counts[communicator.rank] > 0 {
                memmove(base + mine, base + range.lowerBound, counts[communicator.rank] * MemoryLayout<Float>.stride)
            }
        }
        // The same multiplication as GradientSync's, so the bits match plain data parallelism.
        let scale = 1 / Float(communicator.size), lo = slice.lowerBound
        Parallel.chunks(slice.count, work: slice.count) { s, e in
            for i in s ..< e { base[lo + i] *= scale }
        }
    }

    /// Σ g² over the whole averaged gradient, for the divergence check: each rank sums its slice,
    /// one allreduce adds the N partial sums. The order of additions differs from a sum over the
    /// full buffer, which is harmless: the check only asks whether the result is finite.
    func gradientSquares(_ grads: UnsafeMutableBufferPointer<Float>, collectives: WatchedCollectives, step: Int) throws -> Double {
        let base = grads.baseAddress! + slice.lowerBound
        var squares = [orderedBlockSum(slice.count, work: slice.count) { start, end in
            var sum = 0.0
            for i in start ..< end { sum += Double(base[i]) * Double(base[i]) }
            return sum
        }]
        try collectives.allreduce(&squares, op: .sum, "step \(step)'s gradient norm")
        return squares[0]
    }

    /// Every rank's updated slice to every rank: afterwards all replicas hold the same weights.
    func gatherParameters(_ values: UnsafeMutableBufferPointer<Float>) throws {
        for (range, counts) in buckets {
            try communicator.allgather(UnsafeMutableBufferPointer(rebasing: values[range]), counts: counts)
        }
    }

    /// Gathers each state buffer in full to rank 0 and calls `body` with it there (other ranks
    /// only send), one buffer at a time: rank 0 holds one extra full buffer at most. For
    /// checkpoints in the unsharded format; every rank must call it.
    func forEachGatheredState(_ buffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)],
                              _ body: (String, UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        let full = UnsafeMutableBufferPointer<Float>.allocate(capacity: communicator.isRoot ? counts.reduce(0, +) : 0)
        defer { full.deallocate() }
        for (name, buffer) in buffers {
            try communicator.gather(UnsafeBufferPointer(buffer), counts: counts, into: full)
            if communicator.isRoot { try body(name, full) }
        }
    }

    /// Loads this rank's slice of a checkpoint's optimizer state (written unsharded, by any number
    /// of ranks). Every rank already holds the whole checkpoint (`TrainingCheckpoint.readBroadcast`),
    /// so scattering is taking the part of each tensor that overlaps the slice.
    func loadState(_ file: SafeTensors, into buffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)],
                   layout store: ParameterStore) throws {
        for (stateName, buffer) in buffers {
            for p in store.parameters {
                let (start, end) = (max(p.offset, slice.lowerBound), min(p.offset + p.count, slice.upperBound))
                guard start < end else { continue }
                let name = "optimizer.\(stateName).\(p.name)"
                guard let values = file.floats(name), values.count == p.count else {
                    throw TrainingFailure("optimizer state \(name) is missing or has the wrong size")
                }
                for i in start ..< end { buffer[i - slice.lowerBound] = values[i - p.offset] }
            }
        }
    }
}

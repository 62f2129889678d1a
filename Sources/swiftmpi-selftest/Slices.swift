import SwiftMPI

/// Reduce-scatter, in-place allgather and gather over uneven per-rank slices (ZeRO's sharding).
/// Rank r's slice has r + 2 elements (one rank less or more changes every count), and the values
/// are small integers, so float sums are exact and comparable with ==.
func checkSlices(_ report: Report) {
    let world = report.world
    let counts = (0 ..< world.size).map { $0 + 2 }
    let total = counts.reduce(0, +)
    let offset = counts.prefix(world.rank).reduce(0, +)

    report.run("reduce-scatter-float-uneven") {
        let mine = (0 ..< total).map { Float(sample(rank: world.rank, index: $0)) }
        let got = try world.reduceScattered(mine, counts: counts)
        let want = (offset ..< offset + counts[world.rank]).map { i in
            Float((0 ..< world.size).map { sample(rank: $0, index: i) }.reduce(0, +))
        }
        return (got == want, "got \(got) want \(want)")
    }
    report.run("reduce-scatter-double-max-even") {
        let even = [Int](repeating: 3, count: world.size)
        let mine = (0 ..< 3 * world.size).map { Double(sample(rank: world.rank, index: $0)) }
        let got = try world.reduceScattered(mine, counts: even, op: .max)
        let want = (3 * world.rank ..< 3 * world.rank + 3).map { i in
            Double((0 ..< world.size).map { sample(rank: $0, index: i) }.max()!)
        }
        return (got == want, "got \(got) want \(want)")
    }
    /// Every rank's slice of the samples, in rank order: what a gather of the slices must give.
    func everySlice() -> [Float] {
        var all: [Float] = [], start = 0
        for (r, n) in counts.enumerated() {
            all += (start ..< start + n).map { Float(sample(rank: r, index: $0)) }
            start += n
        }
        return all
    }
    report.run("allgather-inplace-uneven") {
        // Only this rank's slice is filled in; the rest is garbage the gather must overwrite.
        var buffer = [Float](repeating: -999, count: total)
        for i in offset ..< offset + counts[world.rank] { buffer[i] = Float(sample(rank: world.rank, index: i)) }
        try buffer.withUnsafeMutableBufferPointer { try world.allgather($0, counts: counts) }
        let want = everySlice()
        return (buffer == want, "got \(buffer) want \(want)")
    }
    report.run("gather-slices-root\(world.size - 1)") {
        let root = world.size - 1
        let slice = (offset ..< offset + counts[world.rank]).map { Float(sample(rank: world.rank, index: $0)) }
        var output = [Float](repeating: -999, count: world.rank == root ? total : 0)
        try slice.withUnsafeBufferPointer { s in
            try output.withUnsafeMutableBufferPointer { try world.gather(s, counts: counts, into: $0, root: root) }
        }
        guard world.rank == root else { return (output.isEmpty, "non-root output touched") }
        let want = everySlice()
        return (output == want, "got \(output) want \(want)")
    }
    report.expectMisuse("misuse-reduce-scatter-counts") {
        _ = try world.reduceScattered([Float](repeating: 1, count: total + 1), counts: counts)
    }
}

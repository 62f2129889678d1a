/// How a convolution's column blocks (see `ConvGeometry.blockRows`) are spread over the worker pool.
///
/// With enough blocks every block is one piece of work: one thread gathers its columns (im2col),
/// runs one single-threaded GEMM and scatters its input gradient (col2im), all while the block is
/// in that core's cache, with no hand-off between the steps. Backward accumulates the weight
/// gradient of each *shard* (a fixed run of blocks) in its own buffer and adds the shards in order;
/// shards of the same parity run at the same time, so the input rows that two neighbouring blocks
/// both touch (a 3×3 kernel's halo) are never written by two threads at once. With few blocks (the
/// deep, small layers) blocks run one after the other and each GEMM is cut into tiles instead.
///
/// Everything here follows from the layer's shape, never from the thread count, so a convolution
/// gives the same bits on any number of threads.
struct ConvBlockPlan {
    let step: Int            // output rows (image n, row oh flattened as n·Ho + oh) per block
    let rowCount: Int        // N·Ho
    let blocks: Int
    let shards: Int          // 1 when blocks run one after the other
    let parallelBlocks: Bool

    /// Below this many blocks there are too few pieces to keep 8 threads evenly busy.
    static let minimumBlocks = 8
    static let maximumShards = 16
    /// Shard buffers hold a weight gradient each: at most 32 MB of them.
    static let maximumShardFloats = 8 << 20

    init(_ g: ConvGeometry, outChannels: Int) {
        step = g.blockRows
        rowCount = g.batch * g.outHeight
        blocks = (rowCount + step - 1) / step
        let shardCount = min(blocks, Self.maximumShards)
        // Same-parity shards are a whole shard apart: enough when a block is taller than the rows a
        // kernel reaches beyond its own output rows.
        let halo = (g.kernel - 1 + g.stride - 1) / g.stride
        parallelBlocks = blocks >= Self.minimumBlocks && step >= halo
            && shardCount * g.rows * outChannels <= Self.maximumShardFloats
        shards = parallelBlocks ? shardCount : 1
    }

    func rows(block b: Int) -> Range<Int> { b * step ..< min(rowCount, (b + 1) * step) }
    func blocks(shard s: Int) -> Range<Int> { blocks * s / shards ..< blocks * (s + 1) / shards }

    /// Runs `body(shard, worker)` for every shard: the even ones in parallel, then the odd ones.
    func forEachShard(_ body: (Int, Int) -> Void) {
        for parity in 0 ..< 2 {
            let count = (shards - parity + 1) / 2
            Parallel.pool.run(pieces: count) { i, worker in body(parity + 2 * i, worker) }
        }
    }
}

/// dst[0..<count] += the sum of `shards` partial buffers (partial s starts at s·stride), added in
/// shard order, so the bits do not depend on how the work is split across threads. With
/// `transposed` = (rows, columns), each partial is a [rows, columns] matrix and dst its transpose.
func addShards(_ partial: UnsafePointer<Float>, shards: Int, stride: Int, count: Int, into dst: UnsafeMutablePointer<Float>,
               transposed: (rows: Int, columns: Int)? = nil) {
    @inline(__always) func total(_ i: Int) -> Float {
        var acc = partial[i]
        for s in 1 ..< shards { acc += partial[s * stride + i] }
        return acc
    }
    if let (rows, columns) = transposed {
        Parallel.chunks(columns, work: shards * count) { start, end in
            for o in start ..< end {
                for r in 0 ..< rows { dst[o * rows + r] += total(r * columns + o) }
            }
        }
    } else {
        Parallel.chunks(count, work: shards * count) { start, end in
            for i in start ..< end { dst[i] += total(i) }
        }
    }
}

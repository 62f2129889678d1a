/// The column-block loops of Conv2d and ConvTranspose2d (see `ConvBlockPlan`), in one place:
/// forward runs every block once; backward runs the blocks in parity shards, each shard summing
/// its weight (and bias) gradient in its own buffer, then adds the shards in shard order, so the
/// bits follow from the layer's shape and never from the thread count.

/// One gradient that backward accumulates over the column blocks: `count` floats per shard,
/// added at the end onto `destination` — as its transpose when `transposed` gives the
/// (rows, columns) of the shard's matrix.
struct ShardSum {
    let count: Int
    let destination: UnsafeMutablePointer<Float>
    var transposed: (rows: Int, columns: Int)? = nil

    /// What the scratch size depends on: the count, and whether the sum is transposed.
    struct Shape {
        let count: Int
        let transposed: Bool
    }

    var shape: Shape { Shape(count: count, transposed: transposed != nil) }
}

/// Where one shard accumulates its gradients (`gradients[i]` for `sums[i]`): its own buffer, or,
/// with one shard and no transposed sum, the destinations themselves.
struct ShardGradients {
    fileprivate let base: UnsafeMutablePointer<Float>?
    fileprivate let sums: [ShardSum]
    fileprivate let offsets: [Int]

    var count: Int { sums.count }
    subscript(_ i: Int) -> UnsafeMutablePointer<Float> { base.map { $0 + offsets[i] } ?? sums[i].destination }
}

extension ConvBlockPlan {
    /// Calls `body(block, scratch, gemm)` for every column block: in parallel on the pool, each
    /// piece with `workerFloats` scratch floats of its worker's own and single-threaded GEMMs, or
    /// (few blocks) one after the other with tiled GEMMs. `byShardParity`: blocks that add onto
    /// rows their neighbours also touch run shard by shard, same parity at once (`forEachShard`);
    /// otherwise every block is its own piece.
    func forEachBlock(workerFloats: Int, workspace: Workspace, byShardParity: Bool = false,
                      _ body: (_ block: Int, _ scratch: UnsafeMutablePointer<Float>, _ gemm: GEMM) -> Void) {
        let scratch = workspace.floats(blockScratchFloats(workerFloats: workerFloats, threads: Parallel.threads))
        if !parallelBlocks {
            for b in 0 ..< blocks { body(b, scratch, sgemm) }
        } else if byShardParity {
            forEachShard { s, worker in
                for b in blocks(shard: s) { body(b, scratch + worker * workerFloats, sgemmSerial) }
            }
        } else {
            Parallel.pool.run(pieces: blocks) { b, worker in body(b, scratch + worker * workerFloats, sgemmSerial) }
        }
    }

    /// Backward's shard loop: calls `body(blocks, scratch, gradients, gemm)` once per shard (even
    /// shards in parallel, then odd ones; one shard of all blocks when they run one after the
    /// other), where the shard adds its blocks' gradients onto `gradients[i]` for `sums[i]`, then
    /// adds the shards' buffers onto the destinations in shard order (`addShards`).
    func accumulateShards(workerFloats: Int, sums: [ShardSum], workspace: Workspace,
                          _ body: (_ blocks: Range<Int>, _ scratch: UnsafeMutablePointer<Float>,
                                   _ gradients: ShardGradients, _ gemm: GEMM) -> Void) {
        let workers = parallelBlocks ? Parallel.threads : 1
        var offsets: [Int] = [], shardFloats = 0
        for sum in sums { offsets.append(shardFloats); shardFloats += sum.count }
        let direct = accumulatesDirectly(sums.map(\.shape))
        let scratch = workspace.floats(shardScratchFloats(workerFloats: workerFloats, sums: sums.map(\.shape), threads: Parallel.threads))
        let partial = scratch + workers * workerFloats
        if !direct { zeroFloats(partial, shards * shardFloats) }
        func gradients(_ s: Int) -> ShardGradients {
            ShardGradients(base: direct ? nil : partial + s * shardFloats, sums: sums, offsets: offsets)
        }
        if parallelBlocks {
            forEachShard { s, worker in body(blocks(shard: s), scratch + worker * workerFloats, gradients(s), sgemmSerial) }
        } else {
            body(blocks(shard: 0), scratch, gradients(0), sgemm)
        }
        guard !direct else { return }
        for (sum, offset) in zip(sums, offsets) {
            addShards(partial + offset, shards: shards, stride: shardFloats, count: sum.count, into: sum.destination,
                      transposed: sum.transposed)
        }
    }

    // The scratch sizes of the two loops, used by the loops themselves and by the layers'
    // `planMemory` (a memory plan must size exactly what runs).

    /// `forEachBlock`'s workspace: `workerFloats` per worker of the pool, or once when blocks run
    /// one after the other.
    func blockScratchFloats(workerFloats: Int, threads: Int) -> Int {
        workerFloats * (parallelBlocks ? threads : 1)
    }

    /// The shard buffers hold the whole gradients of their blocks; one shard in plain form
    /// accumulates straight into the destinations and needs none.
    func accumulatesDirectly(_ sums: [ShardSum.Shape]) -> Bool {
        shards == 1 && sums.allSatisfy { !$0.transposed }
    }

    /// `accumulateShards`' workspace: worker scratch, then every shard's gradient buffers.
    func shardScratchFloats(workerFloats: Int, sums: [ShardSum.Shape], threads: Int) -> Int {
        let workers = parallelBlocks ? threads : 1
        let shardFloats = sums.map(\.count).reduce(0, +)
        return workers * workerFloats + (accumulatesDirectly(sums) ? 0 : shards * shardFloats)
    }
}

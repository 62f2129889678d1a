import CKernels

/// Winograd F(4×4, 3×3) for 3×3, stride-1, padding-1 convolutions with many channels (Lavin &
/// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 4×4 output tile costs
/// 36 multiplies per (input, output) channel pair instead of 144: the tiles' 6×6 input windows
/// and the filters are transformed (CKernels' fkp_winograd_*), multiplied as 36 GEMMs — one per
/// position of the 6×6 transformed tile, [Cout, Cin] · [Cin, tiles] — and transformed back.
///
///   forward:          M_p = U_p · V_p,  U = G W Gᵀ,  V = Bᵀ x̂ B,  y = Aᵀ M A
///   weight gradient:  dU_p = dM_p · V_pᵀ,  dM = A dy Aᵀ,  dW += Gᵀ dU G
///   input gradient:   dV_p = U_pᵀ · dM_p,  dx = Σ_tiles B dV Bᵀ
///
/// The gradients are the exact adjoints of the forward transforms, so they match what the
/// forward computes, not just the convolution it approximates. Rounding: the transforms scale
/// values by up to 8× (Aᵀ) and 5× (Bᵀ) before they cancel, so the error is larger than a direct
/// sum's: WinogradTests bounds it at 1e-4 of each result's scale (its largest magnitude), for
/// y, dx, dW and db, against Reference.swift's loops (measured: 0.3–11e-6 with 32–136
/// channels). Every output is summed in a fixed order whatever the thread count (see `Plan`).
public enum Winograd3x3 {
    /// Whether a convolution runs here: 3×3, stride 1, padding 1, no fused ReLU (see
    /// Conv2d.path), planes of at least 7×7, at least 64 tiles in the batch, and either 128
    /// channels or more in and out, or 32 or more on planes of at least 56×56. Measured per layer
    /// against the direct kernel and im2col (docs/PERFORMANCE.md, "Winograd"): the transforms cost
    /// about the same per tile whatever the channels, and on small planes their vectors are part
    /// empty, so with 32–64 channels on planes of 6²–48² Winograd was up to 45 % slower; on 7²–14²
    /// planes with 128–512 channels, and from 56² up with 32 or more, it was 1.1–2.9× faster. The
    /// filters are transformed on every pass into 36 values for 9, written out and read back by the
    /// GEMMs, each value used once per tile: with few tiles that traffic, not the arithmetic, sets
    /// the time, and the two threads share it. ResNet-50 b8 224²'s 512-channel 7² layer (32 tiles)
    /// took 35 ms per inference step on 2 threads against 20 through im2col (training 91 against
    /// 54, a tie on 1 thread); the U-Net at b1 96² (9 tiles at 12²) trained at 11.9 images/s on 2
    /// threads against 13.5 with those layers direct (8.0 against 8.7 on 1). At 64 tiles (the U-Net
    /// b4 224² bottleneck level) the two tie; at 128 (ResNet-50 b8's 256-channel 14² layers)
    /// Winograd trains 1.4× faster on 1 thread and ties on 2.
    public static func applies(_ g: ConvGeometry, outChannels: Int) -> Bool {
        let channels = min(g.channels, outChannels), tiles = g.batch * ((g.height + 3) / 4) * ((g.width + 3) / 4)
        return g.kernel == 3 && g.stride == 1 && g.padding == 1 && g.height >= 7 && g.width >= 7 && tiles >= 64
            && (channels >= 128 || channels >= 32 && g.height * g.width >= 56 * 56)
    }

    static let positions = 36

    /// How many blocks of tiles a layer's steps run in (1: the whole batch at once; see `Plan`).
    public static func blocks(_ g: ConvGeometry, outChannels: Int) -> Int { Plan(g, outChannels: outChannels).blocks }

    // x: [Cin, N, H, W] → y: [Cout, N, H, W] (+ bias)
    public static func forward(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               _ y: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outChannels cout: Int,
                               workspace: Workspace) {
        let plan = Plan(g, outChannels: cout), (cin, n, hw) = (g.channels, g.batch, g.height * g.width)
        let scratch = workspace.floats(forwardScratchFloats(g, outChannels: cout, threads: Parallel.threads))
        let u = scratch, buffers = u + positions * cout * cin
        transformWeights(w, cout * cin, u)                                                      // U: [36][Cout, Cin]
        plan.forEachBlock { b, loop in
            let tb = plan.tiles(block: b), segments = plan.segments(block: b)
            let v = plan.blockBuffers(buffers, loop.worker), m = v + positions * cin * tb, work = v + plan.blockFloats
            loop.run(cin * segments.count) { i, worker in                                        // V: [36][Cin, tb]
                let (c, s) = (i / segments.count, segments[i % segments.count])
                fkp_winograd_input(x + (c * n + s.image) * hw, g.height, g.width, s.rows.lowerBound, s.rows.upperBound,
                                   v + c * tb + s.offset, cin * tb, plan.transformScratch(work, worker))
            }
            loop.run(positions) { p, _ in                                                        // M: [36][Cout, tb]
                sgemmSerial(m: cout, n: tb, k: cin, a: u + p * cout * cin, lda: cin, b: v + p * cin * tb, ldb: tb,
                            beta: 0, c: m + p * cout * tb, ldc: tb)
            }
            loop.run(cout * segments.count) { i, worker in                                       // y: [Cout, N, H, W]
                let (o, s) = (i / segments.count, segments[i % segments.count])
                fkp_winograd_output(m + o * tb + s.offset, cout * tb, g.height, g.width, s.rows.lowerBound, s.rows.upperBound,
                                    bias?[o] ?? 0, y + (o * n + s.image) * hw, plan.transformScratch(work, worker))
            }
        }
    }

    /// dy: [Cout, N, H, W]; dW += ∂/∂W, dx = ∂/∂x (when given). The bias gradient is the caller's.
    public static func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                weightGradient dW: UnsafeMutablePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>?,
                                _ g: ConvGeometry, outChannels cout: Int, workspace: Workspace) {
        let plan = Plan(g, outChannels: cout), (cin, n, hw) = (g.channels, g.batch, g.height * g.width)
        let filters = cout * cin
        let scratch = workspace.floats(backwardScratchFloats(g, outChannels: cout, threads: Parallel.threads))
        let u = scratch, du = u + positions * filters, shardSums = du + positions * filters
        let carries = shardSums + plan.shardSumCount * positions * filters, carryFloats = 2 * g.width
        let buffers = carries + plan.carryCount * cin * carryFloats
        if dx != nil { transformWeights(w, filters, u) }
        plan.forEachShard { shard, blocks, loop in
            let dU = plan.shardSumCount == 0 ? du : shardSums + shard * positions * filters
            for b in blocks {
                let tb = plan.tiles(block: b), segments = plan.segments(block: b)
                let v = plan.blockBuffers(buffers, loop.worker), dm = v + positions * cin * tb, work = v + plan.blockFloats
                loop.run(cin * segments.count) { i, worker in                                    // V, as forward
                    let (c, s) = (i / segments.count, segments[i % segments.count])
                    fkp_winograd_input(x + (c * n + s.image) * hw, g.height, g.width, s.rows.lowerBound, s.rows.upperBound,
                                       v + c * tb + s.offset, cin * tb, plan.transformScratch(work, worker))
                }
                loop.run(cout * segments.count) { i, worker in                                   // dM: [36][Cout, tb]
                    let (o, s) = (i / segments.count, segments[i % segments.count])
                    fkp_winograd_output_adjoint(dy + (o * n + s.image) * hw, g.height, g.width, s.rows.lowerBound,
                                                s.rows.upperBound, dm + o * tb + s.offset, cout * tb,
                                                plan.transformScratch(work, worker))
                }
                // Per position: dU_p (+)= dM_p · V_pᵀ, then V_p is free and takes dV_p = U_pᵀ · dM_p.
                let beta: Float = b == blocks.lowerBound ? 0 : 1
                loop.run(positions) { p, _ in
                    let (dmp, vp) = (dm + p * cout * tb, v + p * cin * tb)
                    sgemmSerial(transB: true, m: cout, n: cin, k: tb, a: dmp, lda: tb, b: vp, ldb: tb, beta: beta,
                                c: dU + p * filters, ldc: cin)
                    guard dx != nil else { return }
                    sgemmSerial(transA: true, m: cin, n: tb, k: cout, a: u + p * filters, lda: cin, b: dmp, ldb: tb,
                                beta: 0, c: vp, ldc: tb)
                }
                guard let dx else { continue }
                loop.run(cin * segments.count) { i, worker in                                    // dx: [Cin, N, H, W]
                    let (c, s) = (i / segments.count, segments[i % segments.count])
                    fkp_winograd_input_adjoint(v + c * tb + s.offset, cin * tb, g.height, g.width, s.rows.lowerBound,
                                               s.rows.upperBound, dx + (c * n + s.image) * hw,
                                               carries + (b * cin + c) * carryFloats, plan.transformScratch(work, worker))
                }
            }
        }
        if plan.shardSumCount > 0 {   // dU = Σ shards, in shard order
            Parallel.chunks(positions * filters, work: plan.shardSumCount * positions * filters) { start, end in
                (du + start).update(from: shardSums + start, count: end - start)
                for shard in 1 ..< plan.shardSumCount {
                    let from = shardSums + shard * positions * filters
                    for i in start ..< end { du[i] += from[i] }
                }
            }
        }
        Parallel.chunks(filters, work: positions * filters) { start, end in
            fkp_winograd_weights_adjoint(du + start, filters, end - start, dW + 9 * start)
        }
        guard let dx, plan.carryCount > 0 else { return }
        // Each block's last run ending inside an image reached the two rows below it: add them now.
        Parallel.pool.run(pieces: plan.blocks * cin) { i, _ in
            let (b, c) = (i / cin, i % cin)
            guard let s = plan.segments(block: b).last, s.rows.upperBound < plan.tileRowsPerImage else { return }
            let carry = carries + (b * cin + c) * carryFloats
            let rows = dx + (c * n + s.image) * hw + (4 * s.rows.upperBound - 1) * g.width
            for j in 0 ..< carryFloats { rows[j] += carry[j] }
        }
    }

    /// Forward's workspace: U [36][Cout, Cin] and, per worker, one block's V [36][Cin, tiles] and
    /// M [36][Cout, tiles] with its transform scratch (also `Conv2d.planMemory`'s figure).
    static func forwardScratchFloats(_ g: ConvGeometry, outChannels cout: Int, threads: Int) -> Int {
        let plan = Plan(g, outChannels: cout)
        return positions * cout * g.channels + plan.bufferFloats(threads: threads)
    }

    /// Backward's workspace: U, dU and each shard's dU [36][Cout, Cin] (when blocks run in shards),
    /// the rows each block's input gradient carries into the next, and per worker one block's V
    /// (then dV) [36][Cin, tiles] and dM [36][Cout, tiles] with its transform scratch.
    static func backwardScratchFloats(_ g: ConvGeometry, outChannels cout: Int, threads: Int) -> Int {
        let plan = Plan(g, outChannels: cout), filters = cout * g.channels
        return positions * filters * (2 + plan.shardSumCount) + plan.carryCount * g.channels * 2 * g.width
            + plan.bufferFloats(threads: threads)
    }

    /// u[p][f] = (G w_f Gᵀ)[p] for `count` filters, in runs on the pool.
    private static func transformWeights(_ w: UnsafePointer<Float>, _ count: Int, _ u: UnsafeMutablePointer<Float>) {
        Parallel.chunks(count, work: positions * count) { start, end in
            fkp_winograd_weights(w + 9 * start, end - start, u + start, count)
        }
    }
}

extension Winograd3x3 {
    /// How a layer's tiles are cut into blocks. Transformed data is 2.25× the input (36 values per
    /// 16 outputs); for a whole U-Net level at 224² that is 58 MB, and writing it out and reading it
    /// back cost more than the GEMMs. So where a block of whole tile rows whose V and M fit in
    /// `blockBudgetFloats` (most of a core's L2) still gives GEMMs of `minimumBlockTiles` columns
    /// or more, each worker takes a block at a time through all three steps with single-threaded
    /// GEMMs; the weight gradient is summed per shard (a fixed run of blocks) and the shards in
    /// order, so the bits follow the shape, never the thread count. Otherwise (deep layers: few
    /// tiles, large weight matrices) the whole batch is one block, and each step runs on the pool.
    struct Plan {
        static let blockBudgetFloats = 3 << 17   // 1.5 MB
        static let minimumBlockTiles = 32
        static let maximumShards = 8

        let tilesPerRow: Int, tileRowsPerImage: Int, images: Int
        let rowsPerBlock: Int, blocks: Int
        let blockTiles: Int        // tiles of a full block
        let transformFloats: Int   // one transform call's scratch
        let blockFloats: Int       // one block's V (or dV) and M (or dM)

        init(_ g: ConvGeometry, outChannels cout: Int) {
            tilesPerRow = (g.width + 3) / 4; tileRowsPerImage = (g.height + 3) / 4; images = g.batch
            let rows = images * tileRowsPerImage
            let fit = max(1, Plan.blockBudgetFloats / (positions * (g.channels + cout) * tilesPerRow))
            rowsPerBlock = fit * tilesPerRow >= Plan.minimumBlockTiles && fit < rows ? fit : rows
            blocks = (rows + rowsPerBlock - 1) / rowsPerBlock
            blockTiles = rowsPerBlock * tilesPerRow
            transformFloats = fkp_winograd_scratch_floats(g.width)
            blockFloats = positions * (g.channels + cout) * blockTiles
        }

        var blocked: Bool { blocks > 1 }
        var shards: Int { min(blocks, Plan.maximumShards) }
        /// Separate weight-gradient sums: one per shard when blocks run in shards, else none (dU directly).
        var shardSumCount: Int { blocked ? shards : 0 }
        /// Blocks whose input gradient carries two rows into the next block (blocked layers only).
        var carryCount: Int { blocked ? blocks : 0 }
        /// The block buffers and transform scratch of all workers: each worker's own block and
        /// scratch when blocks run in parallel, else the one block and a transform scratch per thread.
        func bufferFloats(threads: Int) -> Int {
            blocked ? threads * (blockFloats + transformFloats) : blockFloats + threads * transformFloats
        }

        /// Where worker `worker`'s block buffers start (blocks in parallel; else worker 0's, the one block's).
        func blockBuffers(_ buffers: UnsafeMutablePointer<Float>, _ worker: Int) -> UnsafeMutablePointer<Float> {
            buffers + worker * (blockFloats + transformFloats)
        }

        func tiles(block b: Int) -> Int {
            (min((b + 1) * rowsPerBlock, images * tileRowsPerImage) - b * rowsPerBlock) * tilesPerRow
        }

        /// A block's tile rows, image by image: rows of `image`, placed at tile `offset` in the block.
        struct Segment { let image: Int, rows: Range<Int>, offset: Int }

        func segments(block b: Int) -> [Segment] {
            let first = b * rowsPerBlock, end = min(first + rowsPerBlock, images * tileRowsPerImage)
            var result: [Segment] = [], row = first
            while row < end {
                let image = row / tileRowsPerImage, ty0 = row % tileRowsPerImage
                let ty1 = min(tileRowsPerImage, ty0 + end - row)
                result.append(Segment(image: image, rows: ty0 ..< ty1, offset: (row - first) * tilesPerRow))
                row += ty1 - ty0
            }
            return result
        }

        /// Where a step's loops run: on the pool (one block: its pieces in parallel), or one after
        /// the other on the worker that holds the block.
        struct Loop {
            let parallel: Bool, worker: Int

            func run(_ count: Int, _ body: (_ piece: Int, _ worker: Int) -> Void) {
                if parallel { Parallel.pool.run(pieces: count, body) } else { for i in 0 ..< count { body(i, worker) } }
            }
        }

        /// A transform call's scratch: after the block buffers, one per worker of the loop.
        func transformScratch(_ work: UnsafeMutablePointer<Float>, _ worker: Int) -> UnsafeMutablePointer<Float> {
            blocked ? work : work + worker * transformFloats
        }

        /// body(block, loop) for every block: blocks in parallel on the pool, or the one block with its loops on the pool.
        func forEachBlock(_ body: (_ block: Int, _ loop: Loop) -> Void) {
            if blocked {
                Parallel.pool.run(pieces: blocks) { b, worker in body(b, Loop(parallel: false, worker: worker)) }
            } else {
                body(0, Loop(parallel: true, worker: 0))
            }
        }

        /// body(shard, its blocks, loop) for every shard (a fixed run of blocks), shards in parallel.
        func forEachShard(_ body: (_ shard: Int, _ blocks: Range<Int>, _ loop: Loop) -> Void) {
            if blocked {
                Parallel.pool.run(pieces: shards) { s, worker in
                    body(s, blocks * s / shards ..< blocks * (s + 1) / shards, Loop(parallel: false, worker: worker))
                }
            } else {
                body(0, 0 ..< 1, Loop(parallel: true, worker: 0))
            }
        }
    }
}

/// nn.Conv2d (square kernel, groups = 1). Parameters: `weight` [Cout, Cin, k, k], `bias` [Cout].
/// Input and output are CNHW (see Tensor.swift).
///
/// `fusedReLU`: the output is max(0, conv(x)) and backward first zeroes the gradient where the
/// output is 0 — the small nets' Conv2d + ReLU pairs, done per column block while the block is in
/// cache instead of as two more passes over the activations. Models print the separate
/// `ReLU(fusedIntoPrevious: true)` module.
public final class Conv2d: Module, InputGradientOptional {
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    public let fusedReLU: Bool
    private let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// dy masked by the fused ReLU (pointwise convolutions only; others mask block by block).
    private let maskedGradOutput = Tensor(shape: [0])
    private var input: Tensor?

    /// `weightInit` defaults to PyTorch's U(±1/√fan_in).
    public init(_ store: ParameterStore, _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Int = 0, bias: Bool = true, rng: RandomGenerator.Box,
                weightInit: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil, fusedReLU: Bool = false) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.fusedReLU = fusedReLU
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.store = store
        let bound = 1 / Float(inChannels * kernel * kernel).squareRoot()
        weight = store.declare("\(name).weight", shape: [outChannels, inChannels, kernel, kernel], kind: .weight,
                               initialize: weightInit ?? Initializer.uniform(bound, rng))
        self.bias = bias ? store.declare("\(name).bias", shape: [outChannels], kind: .bias,
                                         initialize: Initializer.uniform(bound, rng)) : nil
    }

    public var typeDescription: String {
        var s = "Conv2d(\(inChannels), \(outChannels), kernel_size=(\(kernel), \(kernel)), stride=(\(stride), \(stride))"
        if padding != 0 { s += ", padding=(\(padding), \(padding))" }
        if bias == nil { s += ", bias=False" }
        return s + ")"
    }

    func geometry(_ x: Tensor) -> ConvGeometry {
        checkShape(x.shape.count == 4 && x.c == inChannels, typeDescription, "input shape \(x.shape), expected [N, \(inChannels), H, W]")
        let g = ConvGeometry(channels: inChannels, batch: x.n, height: x.h, width: x.w,
                             kernel: kernel, stride: stride, padding: padding)
        checkShape(g.outHeight > 0 && g.outWidth > 0, typeDescription, "input \(x.shape) is smaller than the kernel")
        return g
    }

    // x: [N, Cin, H, W] → y: [N, Cout, Ho, Wo]   (CNHW)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let g = geometry(x)
        output.resize([g.batch, outChannels, g.outHeight, g.outWidth])
        let y = output.data
        input = ctx.training ? x : nil
        if DirectConv3x3.applies(g, outChannels: outChannels) {
            DirectConv3x3.forward(x.data, weight: store.value(weight), bias: bias.map { store.value($0) }, y, g,
                                  outChannels: outChannels, relu: fusedReLU, workspace: ctx.workspace)
            return output
        }
        var beta: Float = 0
        if let bias {
            let (b, columns) = (store.value(bias), g.columns)
            Parallel.chunks(outChannels, work: outChannels * columns) { start, end in
                for o in start ..< end { (y + o * columns).update(repeating: b[o], count: columns) }
            }
            beta = 1
        }
        // y[Cout, N·Ho·Wo] = W[Cout, K] · col[K, N·Ho·Wo] (+ bias), one column block at a time.
        let w = store.value(weight)
        if g.isPointwise {
            sgemm(m: outChannels, n: g.columns, k: g.rows, a: w, lda: g.rows, b: x.data, ldb: g.columns, beta: beta, c: y, ldc: g.columns)
            if fusedReLU { clampBlock(y, 0 ..< g.columns, g.columns, rows: outChannels) }
        } else {
            let plan = ConvBlockPlan(g, outChannels: outChannels), wo = g.outWidth
            let colFloats = g.rows * plan.step * wo
            let scratch = ctx.workspace.floats(colFloats * (plan.parallelBlocks ? Parallel.threads : 1))
            func block(_ b: Int, col: UnsafeMutablePointer<Float>, gemm: GEMM) {
                let rows = plan.rows(block: b), first = rows.lowerBound
                im2col(x.data, col, g, outputRows: rows)
                gemm(false, false, outChannels, rows.count * wo, g.rows, 1, w, g.rows, col, rows.count * wo,
                     beta, y + first * wo, g.columns)
                if fusedReLU { clampBlock(y, first * wo ..< (first + rows.count) * wo, g.columns, rows: outChannels) }
            }
            if plan.parallelBlocks {
                Parallel.pool.run(pieces: plan.blocks) { b, worker in block(b, col: scratch + worker * colFloats, gemm: sgemmSerial) }
            } else {
                for b in 0 ..< plan.blocks { block(b, col: scratch, gemm: sgemm) }
            }
        }
        return output
    }

    // dy: [N, Cout, Ho, Wo] → dx: [N, Cin, H, W]; dW += dy · colᵀ, db += Σ dy
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        let g = geometry(x)
        checkShape(dy.count == outChannels * g.columns, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        if DirectConv3x3.applies(g, outChannels: outChannels) {
            if computesInputGradient { gradInput.resize(x.shape) }
            DirectConv3x3.backward(x.data, dy.data, reluOutput: fusedReLU ? UnsafePointer(output.data) : nil,
                                   weight: store.value(weight), weightGradient: store.grad(weight),
                                   biasGradient: bias.map { store.grad($0) },
                                   inputGradient: computesInputGradient ? gradInput.data : nil,
                                   g, outChannels: outChannels, workspace: ctx.workspace)
            return gradInput
        }
        let blockMask = fusedReLU && !g.isPointwise
        var dy = dy
        if fusedReLU && g.isPointwise {
            maskedGradOutput.resize(dy.shape)
            maskBlock(dy.data, output.data, maskedGradOutput.data, 0 ..< g.columns, g.columns, rows: outChannels, bias: nil)
            dy = maskedGradOutput
        }
        if let bias, !blockMask {
            let (db, d, columns) = (store.grad(bias), dy.data, g.columns)
            Parallel.chunks(outChannels, work: outChannels * columns) { start, end in
                for o in start ..< end { db[o] += sum(d + o * columns, columns) }
            }
        }
        let (w, dW) = (store.value(weight), store.grad(weight))
        let inputGradient = computesInputGradient
        if inputGradient { gradInput.resize(x.shape) }
        if g.isPointwise {
            sgemm(transB: true, m: outChannels, n: g.rows, k: g.columns, a: dy.data, lda: g.columns,
                  b: x.data, ldb: g.columns, beta: 1, c: dW, ldc: g.rows)
            guard inputGradient else { return gradInput }
            sgemm(transA: true, m: g.rows, n: g.columns, k: outChannels, a: w, lda: g.rows,
                  b: dy.data, ldb: g.columns, beta: 0, c: gradInput.data, ldc: g.columns)
            return gradInput
        }
        // Per column block: dW += dy_b · col_bᵀ; dcol_b = Wᵀ · dy_b folded back onto the input.
        // With few output channels the weight gradient is accumulated transposed, dWᵀ += col_b ·
        // dy_bᵀ, and added to dW at the end: OpenBLAS runs that shape 1.3–1.7× faster here
        // (Cout 32–128, blocks of 2048 columns). With Cout ≥ 512, or one block only (the deep
        // ResNet layers), the plain form is as fast or faster. Blocks run in parallel shards, each
        // with its own weight (and bias) gradient, or one after the other (see ConvBlockPlan).
        let plan = ConvBlockPlan(g, outChannels: outChannels), wo = g.outWidth
        let shards = plan.shards
        let workers = plan.parallelBlocks ? Parallel.threads : 1
        let blockFloats = g.rows * plan.step * wo
        let transposed = outChannels <= 256 && plan.blocks > 1
        let maskFloats = blockMask ? outChannels * plan.step * wo : 0
        let perWorker = 2 * blockFloats + maskFloats
        let weightFloats = g.rows * outChannels, biasFloats = blockMask && bias != nil ? outChannels : 0
        let shardFloats = weightFloats + biasFloats
        // The shard buffers hold the whole weight (and bias) gradient of their blocks; the plain
        // form with one shard accumulates straight into dW.
        let direct = shards == 1 && !transposed
        let scratch = ctx.workspace.floats(workers * perWorker + (direct ? 0 : shards * shardFloats))
        let partial = scratch + workers * perWorker
        if !direct { zeroFloats(partial, shards * shardFloats) }
        if inputGradient { gradInput.zero() }
        func shard(_ s: Int, _ worker: Int, gemm: GEMM) {
            let col = scratch + worker * perWorker
            let dcol = col + blockFloats, masked = dcol + blockFloats
            let dWs = direct ? dW : partial + s * shardFloats
            let dbs: UnsafeMutablePointer<Float>? = biasFloats == 0 ? nil
                : direct ? store.grad(bias!) : partial + s * shardFloats + weightFloats
            for b in plan.blocks(shard: s) {
                let rows = plan.rows(block: b), first = rows.lowerBound
                let n = rows.count * wo
                // The block of dy: in place (row stride N·Ho·Wo), or masked into `masked` (stride n).
                var (dyBlock, ld) = (dy.data + first * wo, g.columns)
                if blockMask {
                    maskBlock(dy.data, output.data, masked, first * wo ..< first * wo + n, g.columns, rows: outChannels, bias: dbs)
                    (dyBlock, ld) = (masked, n)
                }
                im2col(x.data, col, g, outputRows: rows)
                if transposed {
                    gemm(false, true, g.rows, outChannels, n, 1, col, n, dyBlock, ld, 1, dWs, outChannels)
                } else {
                    gemm(false, true, outChannels, g.rows, n, 1, dyBlock, ld, col, n, 1, dWs, g.rows)
                }
                guard inputGradient else { continue }
                gemm(true, false, g.rows, n, outChannels, 1, w, g.rows, dyBlock, ld, 0, dcol, n)
                col2imAdd(dcol, gradInput.data, g, outputRows: rows)
            }
        }
        if plan.parallelBlocks {
            plan.forEachShard { s, worker in shard(s, worker, gemm: sgemmSerial) }
        } else {
            shard(0, 0, gemm: sgemm)
        }
        if !direct {
            addShards(partial, shards: shards, stride: shardFloats, count: weightFloats, into: dW,
                      transposed: transposed ? (g.rows, outChannels) : nil)
            if biasFloats > 0 {
                addShards(partial + weightFloats, shards: shards, stride: shardFloats, count: biasFloats, into: store.grad(bias!))
            }
        }
        return gradInput
    }
}

/// y[o, cols] = max(0, y[o, cols]) for o in 0..<rows of a matrix with row stride `stride`.
private func clampBlock(_ y: UnsafeMutablePointer<Float>, _ cols: Range<Int>, _ stride: Int, rows: Int) {
    Parallel.chunks(rows, work: rows * cols.count) { start, end in
        for o in start ..< end {
            let r = y + o * stride + cols.lowerBound
            for i in 0 ..< cols.count { r[i] = max(r[i], 0) }
        }
    }
}

/// masked[o, 0..<n] = dy[o, cols] where y[o, cols] > 0, else 0 (n = cols.count, row stride `stride`
/// in dy and y); db[o] += the masked row's sum when given.
private func maskBlock(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ masked: UnsafeMutablePointer<Float>,
                       _ cols: Range<Int>, _ stride: Int, rows: Int, bias db: UnsafeMutablePointer<Float>?) {
    let n = cols.count
    Parallel.chunks(rows, work: 2 * rows * n) { start, end in
        for o in start ..< end {
            let (g, yr, m) = (dy + o * stride + cols.lowerBound, y + o * stride + cols.lowerBound, masked + o * n)
            for i in 0 ..< n { let gi = g[i]; m[i] = yr[i] > 0 ? gi : 0 }   // select, not branch
            if let db { db[o] += sum(m, n) }
        }
    }
}

/// Σ x[0..<n] with four accumulators (vectorises; order fixed, so results are reproducible).
@inlinable
public func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var i = 0
    while i + 4 <= n {
        s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]
        i += 4
    }
    while i < n { s0 += x[i]; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

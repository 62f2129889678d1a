/// nn.Conv2d (square kernel, groups = 1). Parameters: `weight` [Cout, Cin, k, k], `bias` [Cout].
/// Input and output are CNHW (see Tensor.swift): x [Cin, N, H, W] → y [Cout, N, Ho, Wo].
///
/// `forward` and `backward` only pick one kernel path from the layer's shape (`Path`) and call it;
/// each path's forward and backward are laid out next to each other below:
///   Winograd 3×3 — 3×3, stride 1, padding 1, many channels or large planes, no fused ReLU:
///                  F(4×4, 3×3) transforms and 36 GEMMs (`Winograd3x3.applies`; Winograd3x3.swift)
///   direct 3×3   — 3×3, stride 1, padding 1 or 0, up to 256 channels in whole weight blocks, planes
///                  at least 8 wide (`DirectConv3x3.applies`; DirectConv3x3.swift)
///   direct s2    — 3×3, stride 2, unpadded, up to 64 channels in whole weight blocks: the
///                  same kernels on parity planes (`DirectConvStride2.applies`; DirectConvStride2.swift)
///   pointwise    — 1×1, stride 1, unpadded: the input is the column matrix itself; one GEMM
///                  forward, two backward (dW, dx)
///   im2col       — everything else: im2col + GEMM per column block (ConvBlockPlan, ColumnShards.swift)
///
/// `fusedReLU`: the output is max(0, conv(x)) and backward first zeroes the gradient where the
/// output is 0 — the small nets' Conv2d + ReLU pairs, done per column block while the block is in
/// cache instead of as two more passes over the activations. Models print the separate
/// `ReLU(fusedIntoPrevious: true)` module.
///
/// `foldedNormalization`: at inference the BatchNorm2d after this layer (and a ResNet block's
/// residual Add) is applied in the epilogue (ConvEpilogue.swift): per GEMM tile or column block
/// while it is in cache on the pointwise and im2col paths, as one pass after the kernel on the others.
public final class Conv2d: Module, InputGradientOptional, CarriesNormalization {
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    public let fusedReLU: Bool
    let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// dy masked by the fused ReLU (pointwise convolutions only; others mask block by block).
    private let maskedGradOutput = Tensor(shape: [0])
    private var input: Tensor?
    /// The BatchNorm2d that follows, applied in the epilogue at inference (`ConvEpilogue.foldAtInference`).
    public internal(set) var foldedNormalization: BatchNorm2d?
    var carriedChannels: Int? { fusedReLU ? nil : outChannels }
    /// A residual [Cout, N·Ho·Wo] that the next inference forward adds after the folded
    /// BatchNorm, then a ReLU when `relu` (a ResNet block's Add); cleared by that forward.
    var residualForNextForward: (tensor: Tensor, relu: Bool)?
    /// The folded BatchNorm's scale and shift per output channel for this forward.
    private let epilogueTerms = Tensor(shape: [0])

    /// `weightInit` defaults to PyTorch's U(±1/√fan_in).
    public init(_ store: ParameterStore, _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Int = 0, bias: Bool = true, rng: RandomGenerator.Box,
                weightInit: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil,
                biasInit: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil, fusedReLU: Bool = false) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.fusedReLU = fusedReLU
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.store = store
        let bound = 1 / Float(inChannels * kernel * kernel).squareRoot()
        weight = store.declare("\(name).weight", shape: [outChannels, inChannels, kernel, kernel], kind: .weight,
                               initialize: weightInit ?? Initializer.uniform(bound, rng))
        self.bias = bias ? store.declare("\(name).bias", shape: [outChannels], kind: .bias,
                                         initialize: biasInit ?? Initializer.uniform(bound, rng)) : nil
    }

    public var typeDescription: String {
        var s = "Conv2d(\(inChannels), \(outChannels), kernel_size=(\(kernel), \(kernel)), stride=(\(stride), \(stride))"
        if padding != 0 { s += ", padding=(\(padding), \(padding))" }
        if bias == nil { s += ", bias=False" }
        return s + ")"
    }

    func geometry(_ x: Tensor) -> ConvGeometry { geometry(x.shape) }

    func geometry(_ shape: [Int]) -> ConvGeometry {
        checkShape(shape.count == 4 && shape[1] == inChannels, typeDescription, "input shape \(shape), expected [N, \(inChannels), H, W]")
        let g = ConvGeometry(channels: inChannels, batch: shape[0], height: shape[2], width: shape[3],
                             kernel: kernel, stride: stride, padding: padding)
        checkShape(g.outHeight > 0 && g.outWidth > 0, typeDescription, "input \(shape) is smaller than the kernel")
        return g
    }

    /// The kernel path of a convolution: from its shape alone, so forward and backward agree.
    enum Path { case winograd3x3, direct3x3, directStride2, pointwise, im2col }

    func path(_ g: ConvGeometry) -> Path {
        if !fusedReLU && Winograd3x3.applies(g, outChannels: outChannels) { return .winograd3x3 }
        if DirectConv3x3.applies(g, outChannels: outChannels) { return .direct3x3 }
        if DirectConvStride2.applies(g, outChannels: outChannels, inputGradient: computesInputGradient) { return .directStride2 }
        return g.isPointwise ? .pointwise : .im2col
    }

    // x: [Cin, N, H, W] → y: [Cout, N, Ho, Wo]
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let g = geometry(x)
        output.resize([g.batch, outChannels, g.outHeight, g.outWidth])
        input = ctx.training ? x : nil
        let epilogue = ctx.training ? nil : inferenceEpilogue(g)
        switch path(g) {
        case .winograd3x3:
            Winograd3x3.forward(x.data, weight: store.value(weight), bias: bias.map { store.value($0) }, output.data, g,
                                outChannels: outChannels, workspace: ctx.workspace)
            epilogue?.applyAll(output.data, rows: outChannels, stride: g.columns)
        case .direct3x3:
            forwardDirect3x3(x, g, ctx)
            epilogue?.applyAll(output.data, rows: outChannels, stride: g.columns)
        case .directStride2:
            DirectConvStride2.forward(x.data, weight: store.value(weight), bias: bias.map { store.value($0) }, output.data, g,
                                      outChannels: outChannels, relu: fusedReLU, workspace: ctx.workspace)
            epilogue?.applyAll(output.data, rows: outChannels, stride: g.columns)
        case .pointwise: forwardPointwise(x, g, epilogue)
        case .im2col: forwardIm2col(x, g, ctx, epilogue)
        }
        return output
    }

    /// A residual block's Add (and its ReLU when `relu`) moved into this layer's epilogue: at
    /// inference with a folded BatchNorm the next forward adds `residual` after the BatchNorm, and
    /// this returns true; otherwise it sets nothing and returns false, and the Add runs itself.
    public func addsResidualInNextForward(_ residual: Tensor, relu: Bool, _ ctx: Context) -> Bool {
        guard !ctx.training, foldedNormalization != nil, ConvEpilogue.enabled else { return false }
        residualForNextForward = (residual, relu)
        return true
    }

    /// This inference forward's epilogue: the folded BatchNorm's terms and the residual a block
    /// asked for; nil without a folded BatchNorm (or with `ConvEpilogue.enabled` off).
    private func inferenceEpilogue(_ g: ConvGeometry) -> AffineEpilogue? {
        let residual = residualForNextForward
        residualForNextForward = nil
        guard let bn = foldedNormalization, ConvEpilogue.enabled else {
            precondition(residual == nil, "\(typeDescription): a residual without a folded BatchNorm")
            return nil
        }
        if let residual {
            checkShape(residual.tensor.count == outChannels * g.columns && !bn.fusedReLU, typeDescription,
                       "residual \(residual.tensor.shape) for output \(output.shape)")
        }
        return bn.epilogue(epilogueTerms, residual: residual)
    }

    // dy: [Cout, N, Ho, Wo] → dx: [Cin, N, H, W]; dW += dy · colᵀ, db += Σ dy
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        let g = geometry(x)
        checkShape(dy.count == outChannels * g.columns, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        if computesInputGradient { gradInput.resize(x.shape) }
        switch path(g) {
        case .winograd3x3:
            addBiasGradient(dy, g)
            Winograd3x3.backward(x.data, dy.data, weight: store.value(weight), weightGradient: store.grad(weight),
                                 inputGradient: computesInputGradient ? gradInput.data : nil, g,
                                 outChannels: outChannels, workspace: ctx.workspace)
        case .direct3x3: backwardDirect3x3(dy, x, g, ctx)
        case .directStride2:
            DirectConvStride2.backward(x.data, dy.data, reluOutput: fusedReLU ? UnsafePointer(output.data) : nil,
                                       weight: store.value(weight), weightGradient: store.grad(weight),
                                       biasGradient: bias.map { store.grad($0) },
                                       inputGradient: computesInputGradient ? gradInput.data : nil,
                                       g, outChannels: outChannels, workspace: ctx.workspace)
        case .pointwise: backwardPointwise(dy, x, g)
        case .im2col: backwardIm2col(dy, x, g, ctx)
        }
        return gradInput
    }

    // What forward and backward allocate: the output, the input gradient (unless skipped), the
    // masked gradient of a fused-ReLU pointwise convolution, and the path's scratch requests.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let g = geometry(x)
        let out = [g.batch, outChannels, g.outHeight, g.outWidth], outFloats = outChannels * g.columns
        ledger.keep(.output, floats: outFloats, typeDescription)
        if computesInputGradient { ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription) }
        switch path(g) {
        case .winograd3x3:
            ledger.workspace(floats: Winograd3x3.forwardScratchFloats(g, outChannels: outChannels, threads: ledger.threads),
                             typeDescription)
            ledger.workspace(floats: Winograd3x3.backwardScratchFloats(g, outChannels: outChannels, threads: ledger.threads),
                             typeDescription)
        case .direct3x3:
            ledger.workspace(floats: DirectConv3x3.forwardScratchFloats(g, outChannels: outChannels), typeDescription)
            ledger.workspace(floats: DirectConv3x3.backwardScratchFloats(g, outChannels: outChannels,
                                                                         inputGradient: computesInputGradient), typeDescription)
        case .directStride2:
            ledger.workspace(floats: DirectConvStride2.forwardScratchFloats(g, outChannels: outChannels), typeDescription)
            ledger.workspace(floats: DirectConvStride2.backwardScratchFloats(g, outChannels: outChannels,
                                                                             inputGradient: computesInputGradient), typeDescription)
        case .pointwise:
            if fusedReLU { ledger.keep(.gradient, floats: outFloats, typeDescription) }
        case .im2col:
            let plan = ConvBlockPlan(g, outChannels: outChannels), blockFloats = g.rows * plan.step * g.outWidth
            ledger.workspace(floats: plan.blockScratchFloats(workerFloats: blockFloats, threads: ledger.threads), typeDescription)
            let (workerFloats, sums) = im2colBackwardScratch(g, plan)
            ledger.workspace(floats: plan.shardScratchFloats(workerFloats: workerFloats, sums: sums, threads: ledger.threads),
                             typeDescription)
        }
        return out
    }

    public func releaseBuffers() {
        output.release(); gradInput.release(); maskedGradOutput.release(); epilogueTerms.release(); input = nil
    }
}

// MARK: - Direct 3×3 (DirectConv3x3.swift; bias and fused ReLU inside its kernels)

extension Conv2d {
    // x: [Cin, N, H, W] → y: [Cout, N, H, W]
    private func forwardDirect3x3(_ x: Tensor, _ g: ConvGeometry, _ ctx: Context) {
        DirectConv3x3.forward(x.data, weight: store.value(weight), bias: bias.map { store.value($0) }, output.data, g,
                              outChannels: outChannels, relu: fusedReLU, workspace: ctx.workspace)
    }

    // dy: [Cout, N, H, W] → dx: [Cin, N, H, W]; dW, db accumulated
    private func backwardDirect3x3(_ dy: Tensor, _ x: Tensor, _ g: ConvGeometry, _ ctx: Context) {
        DirectConv3x3.backward(x.data, dy.data, reluOutput: fusedReLU ? UnsafePointer(output.data) : nil,
                               weight: store.value(weight), weightGradient: store.grad(weight),
                               biasGradient: bias.map { store.grad($0) },
                               inputGradient: computesInputGradient ? gradInput.data : nil,
                               g, outChannels: outChannels, workspace: ctx.workspace)
    }
}

// MARK: - Pointwise 1×1: x [Cin, N·H·W] is the column matrix itself

extension Conv2d {
    // y[Cout, N·H·W] = W[Cout, Cin] · x[Cin, N·H·W] (+ bias) (then the epilogue on each GEMM tile)
    private func forwardPointwise(_ x: Tensor, _ g: ConvGeometry, _ epilogue: AffineEpilogue?) {
        let y = output.data, columns = g.columns
        let beta = fillBias(y, g)
        sgemm(m: outChannels, n: columns, k: g.rows, a: store.value(weight), lda: g.rows, b: x.data, ldb: columns,
              beta: beta, c: y, ldc: columns, tileDone: epilogue.map { e in { rows, cols in e.apply(y, rows: rows, cols: cols, stride: columns) } })
        if fusedReLU { clampBlock(y, 0 ..< columns, columns, rows: outChannels) }
    }

    // dW[Cout, Cin] += dy · xᵀ, db += Σ dy, dx[Cin, N·H·W] = Wᵀ · dy (dy masked first by a fused ReLU)
    private func backwardPointwise(_ dy: Tensor, _ x: Tensor, _ g: ConvGeometry) {
        var dy = dy
        if fusedReLU {
            maskedGradOutput.resize(dy.shape)
            maskBlock(dy.data, output.data, maskedGradOutput.data, 0 ..< g.columns, g.columns, rows: outChannels, bias: nil)
            dy = maskedGradOutput
        }
        addBiasGradient(dy, g)
        sgemm(transB: true, m: outChannels, n: g.rows, k: g.columns, a: dy.data, lda: g.columns,
              b: x.data, ldb: g.columns, beta: 1, c: store.grad(weight), ldc: g.rows)
        guard computesInputGradient else { return }
        sgemm(transA: true, m: g.rows, n: g.columns, k: outChannels, a: store.value(weight), lda: g.rows,
              b: dy.data, ldb: g.columns, beta: 0, c: gradInput.data, ldc: g.columns)
    }
}

// MARK: - im2col + GEMM, one column block (whole output rows) at a time

extension Conv2d {
    // Per block b: col_b[K = Cin·k·k, rows_b·Wo] = im2col(x); y[Cout, block columns] = W[Cout, K] · col_b (+ bias),
    // then the inference epilogue on the block while it is in cache
    private func forwardIm2col(_ x: Tensor, _ g: ConvGeometry, _ ctx: Context, _ epilogue: AffineEpilogue?) {
        let y = output.data
        let beta = fillBias(y, g)
        let w = store.value(weight)
        let plan = ConvBlockPlan(g, outChannels: outChannels), wo = g.outWidth
        plan.forEachBlock(workerFloats: g.rows * plan.step * wo, workspace: ctx.workspace) { b, col, gemm in
            let rows = plan.rows(block: b), first = rows.lowerBound
            im2col(x.data, col, g, outputRows: rows)
            gemm(false, false, outChannels, rows.count * wo, g.rows, 1, w, g.rows, col, rows.count * wo,
                 beta, y + first * wo, g.columns)
            let cols = first * wo ..< (first + rows.count) * wo
            if let epilogue {
                Parallel.chunks(outChannels, work: 2 * outChannels * cols.count) { start, end in
                    epilogue.apply(y, rows: start ..< end, cols: cols, stride: g.columns)
                }
            }
            if fusedReLU { clampBlock(y, cols, g.columns, rows: outChannels) }
        }
    }

    // Per block b: dW[Cout, K] += dy_b · col_bᵀ; dcol_b[K, rows_b·Wo] = Wᵀ · dy_b folded back onto dx (col2im)
    private func backwardIm2col(_ dy: Tensor, _ x: Tensor, _ g: ConvGeometry, _ ctx: Context) {
        // A fused ReLU masks dy block by block (and sums db from the masked block); otherwise db
        // is summed here from the whole dy.
        let blockMask = fusedReLU
        if !blockMask { addBiasGradient(dy, g) }
        // With few output channels the weight gradient is accumulated transposed, dWᵀ += col_b ·
        // dy_bᵀ, and added to dW at the end: OpenBLAS runs that shape 1.3–1.7× faster here
        // (Cout 32–128, blocks of 2048 columns). With Cout ≥ 512, or one block only (the deep
        // ResNet layers), the plain form is as fast or faster. Blocks run in parallel shards, each
        // with its own weight (and bias) gradient, or one after the other (see ConvBlockPlan).
        let (w, dW) = (store.value(weight), store.grad(weight))
        let inputGradient = computesInputGradient
        let plan = ConvBlockPlan(g, outChannels: outChannels), wo = g.outWidth
        let blockFloats = g.rows * plan.step * wo
        let (workerFloats, shapes) = im2colBackwardScratch(g, plan)
        let transposed = shapes[0].transposed
        var sums = [ShardSum(count: shapes[0].count, destination: dW, transposed: transposed ? (g.rows, outChannels) : nil)]
        if shapes.count > 1, let bias { sums.append(ShardSum(count: shapes[1].count, destination: store.grad(bias))) }
        if inputGradient { gradInput.zero() }
        plan.accumulateShards(workerFloats: workerFloats, sums: sums, workspace: ctx.workspace) { blocks, col, gradients, gemm in
            let dcol = col + blockFloats, masked = dcol + blockFloats
            let dWs = gradients[0], dbs = gradients.count > 1 ? gradients[1] : nil
            for b in blocks {
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
    }
}

extension Conv2d {
    /// im2col backward's scratch, one expression for the pass and for `planMemory`: per worker
    /// col_b, dcol_b [K, block columns] and, with a fused ReLU, the masked dy_b [Cout, block
    /// columns]; per shard the weight gradient (transposed as `backwardIm2col` explains) and, with
    /// a fused ReLU, the bias gradient summed from the masked blocks.
    func im2colBackwardScratch(_ g: ConvGeometry, _ plan: ConvBlockPlan) -> (workerFloats: Int, sums: [ShardSum.Shape]) {
        let blockFloats = g.rows * plan.step * g.outWidth
        let maskFloats = fusedReLU ? outChannels * plan.step * g.outWidth : 0
        var sums = [ShardSum.Shape(count: g.rows * outChannels, transposed: outChannels <= 256 && plan.blocks > 1)]
        if fusedReLU && bias != nil { sums.append(ShardSum.Shape(count: outChannels, transposed: false)) }
        return (2 * blockFloats + maskFloats, sums)
    }
}

// MARK: - Shared by the GEMM paths

extension Conv2d {
    /// y[o, ·] = bias[o] for every output channel; returns the GEMM's beta (1 over a bias, else 0).
    private func fillBias(_ y: UnsafeMutablePointer<Float>, _ g: ConvGeometry) -> Float {
        guard let bias else { return 0 }
        let (b, columns) = (store.value(bias), g.columns)
        Parallel.chunks(outChannels, work: outChannels * columns) { start, end in
            for o in start ..< end { (y + o * columns).update(repeating: b[o], count: columns) }
        }
        return 1
    }

    /// db[o] += Σ dy[o, ·] over all N·Ho·Wo columns.
    private func addBiasGradient(_ dy: Tensor, _ g: ConvGeometry) {
        guard let bias else { return }
        let (db, d, columns) = (store.grad(bias), dy.data, g.columns)
        Parallel.chunks(outChannels, work: outChannels * columns) { start, end in
            for o in start ..< end { db[o] += sum(d + o * columns, columns) }
        }
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

/// nn.ConvTranspose2d (square kernel, groups = 1, no output padding). Parameters: `weight`
/// [Cin, Cout, k, k] (PyTorch's layout), `bias` [Cout]. Input and output are CNHW.
///
/// A transposed convolution is the adjoint of a convolution whose *input* is this layer's output:
/// forward scatters `Wᵀ · x` onto the output with col2im, backward gathers with im2col and
/// multiplies by W — the convolution's backward and forward passes, swapped.
public final class ConvTranspose2d: Module, InputGradientOptional {
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var input: Tensor?

    /// Default init as PyTorch: U(±1/√fan_in) for weight and bias, where PyTorch computes fan_in from
    /// weight.size(1)·k·k = Cout·k·k for this layout.
    public init(_ store: ParameterStore, _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int = 2,
                stride: Int = 2, padding: Int = 0, bias: Bool = true, rng: RandomGenerator.Box) {
        precondition(padding >= 0 && 2 * padding < kernel, "ConvTranspose2d: padding \(padding) must be below kernel/2")
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.store = store
        let bound = 1 / Float(outChannels * kernel * kernel).squareRoot()
        weight = store.declare("\(name).weight", shape: [inChannels, outChannels, kernel, kernel], kind: .weight,
                               initialize: Initializer.uniform(bound, rng))
        self.bias = bias ? store.declare("\(name).bias", shape: [outChannels], kind: .bias,
                                         initialize: Initializer.uniform(bound, rng)) : nil
    }

    public var typeDescription: String {
        var s = "ConvTranspose2d(\(inChannels), \(outChannels), kernel_size=(\(kernel), \(kernel)), stride=(\(stride), \(stride))"
        if padding != 0 { s += ", padding=(\(padding), \(padding))" }
        if bias == nil { s += ", bias=False" }
        return s + ")"
    }

    /// The geometry of the adjoint convolution: its input is our output [Cout, N, Ho, Wo], its
    /// output positions are our input pixels (outHeight = H, outWidth = W).
    func geometry(_ x: Tensor) -> ConvGeometry { geometry(x.shape) }

    func geometry(_ shape: [Int]) -> ConvGeometry {
        checkShape(shape.count == 4 && shape[1] == inChannels, typeDescription, "input shape \(shape), expected [N, \(inChannels), H, W]")
        let (h, w) = (shape[2], shape[3])
        let ho = (h - 1) * stride - 2 * padding + kernel, wo = (w - 1) * stride - 2 * padding + kernel
        checkShape(h > 0 && w > 0, typeDescription, "empty input \(shape)")
        return ConvGeometry(channels: outChannels, batch: shape[0], height: ho, width: wo, kernel: kernel, stride: stride, padding: padding)
    }

    // x: [N, Cin, H, W] → y: [N, Cout, (H−1)s − 2p + k, (W−1)s − 2p + k]   (CNHW)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let g = geometry(x)
        output.resize([g.batch, outChannels, g.height, g.width])
        // y starts as the bias (or 0); then per block of input rows (the adjoint convolution's
        // output rows): cols_b[Cout·k·k, b] = Wᵀ · x_b, W viewed as [Cin, Cout·k·k], summed onto y.
        let (y, plane) = (output.data, g.batch * g.height * g.width)
        if let bias {
            let b = store.value(bias)
            Parallel.chunks(outChannels, work: outChannels * plane) { start, end in
                for o in start ..< end { (y + o * plane).update(repeating: b[o], count: plane) }
            }
        } else {
            output.zero()
        }
        // Blocks run on the pool as Conv2d's do (ConvBlockPlan): shards of the same parity at once,
        // so two threads never add onto the same output rows (the halo when kernel > stride).
        let plan = ConvBlockPlan(g, outChannels: inChannels), wi = g.outWidth, w = store.value(weight)
        plan.forEachBlock(workerFloats: g.rows * plan.step * wi, workspace: ctx.workspace, byShardParity: true) { b, cols, gemm in
            let rows = plan.rows(block: b), n = rows.count * wi
            gemm(true, false, g.rows, n, inChannels, 1, w, g.rows, x.data + rows.lowerBound * wi, g.columns, 0, cols, n)
            col2imAdd(cols, y, g, outputRows: rows)
        }
        input = ctx.training ? x : nil
        return output
    }

    // dy: [N, Cout, Ho, Wo] → dx: [N, Cin, H, W]; with dcols = im2col(dy), per block of input rows:
    //   dW += x_b · dcols_bᵀ, dx_b = W · dcols_b;  db += Σ dy
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        let g = geometry(x)
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        if let bias {
            let db = store.grad(bias), plane = g.batch * g.height * g.width, d = dy.data
            Parallel.chunks(outChannels, work: outChannels * plane) { start, end in
                for o in start ..< end { db[o] += Float(blockedSum(plane) { d[o * plane + $0] }) }
            }
        }
        let inputGradient = computesInputGradient
        if inputGradient { gradInput.resize(x.shape) }
        // Per block: dW_shard += x_b · dcols_bᵀ, dx_b = W · dcols_b (its own rows of dx); the
        // shards' weight gradients are added in order (ConvBlockPlan, as in Conv2d).
        let (w, dW) = (store.value(weight), store.grad(weight))
        let plan = ConvBlockPlan(g, outChannels: inChannels), wi = g.outWidth
        let blockFloats = g.rows * plan.step * wi
        let sums = [ShardSum(count: weightFloats(g), destination: dW)]
        plan.accumulateShards(workerFloats: blockFloats, sums: sums, workspace: ctx.workspace) { blocks, dcols, gradients, gemm in
            let dWs = gradients[0]
            for b in blocks {
                let rows = plan.rows(block: b), first = rows.lowerBound, n = rows.count * wi
                im2col(dy.data, dcols, g, outputRows: rows)
                gemm(false, true, inChannels, g.rows, n, 1, x.data + first * wi, g.columns, dcols, n, 1, dWs, g.rows)
                guard inputGradient else { continue }
                gemm(false, false, inChannels, n, g.rows, 1, w, g.rows, dcols, n, 0, gradInput.data + first * wi, g.columns)
            }
        }
        return gradInput
    }

    /// The weight's floats, [Cin, Cout·k·k]: one shard buffer each in backward.
    private func weightFloats(_ g: ConvGeometry) -> Int { inChannels * g.rows }

    // The output, the input gradient (unless skipped), and the block loops' scratch: cols_b
    // [Cout·k·k, block columns] per worker, forward and backward, plus the shards' weight gradients.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let g = geometry(x)
        let out = [g.batch, outChannels, g.height, g.width]
        ledger.keep(.output, floats: Tensor.elementCount(out), typeDescription)
        if computesInputGradient { ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription) }
        let plan = ConvBlockPlan(g, outChannels: inChannels), blockFloats = g.rows * plan.step * g.outWidth
        ledger.workspace(floats: plan.blockScratchFloats(workerFloats: blockFloats, threads: ledger.threads), typeDescription)
        ledger.workspace(floats: plan.shardScratchFloats(workerFloats: blockFloats, sums: [.init(count: weightFloats(g), transposed: false)],
                                                         threads: ledger.threads), typeDescription)
        return out
    }

    public func releaseBuffers() { output.release(); gradInput.release(); input = nil }
}

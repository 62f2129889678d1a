import CKernels

/// nn.Conv2d(C, C, 3, stride, padding=1, groups=C): a depthwise 3×3 convolution, stride 1 or 2
/// (MobileNet's inverted residuals). Parameters: `weight` [C, 1, 3, 3], `bias` [C]. Input and output
/// are CNHW.
///
/// Each channel only sees its own plane, so there is no GEMM to hand this to (im2col would build
/// a 9-row column matrix per channel for a 9-long dot product): the C kernels (depthwise3x3.c)
/// work plane by plane on a zero-bordered copy that stays in cache.
///
///   forward:          y[c, n] = x̂[c, n] ⋆ W[c] (+ b[c])                  one piece of work per plane
///   input gradient:   dx[c, n] = spread(dy[c, n]) ⋆ rot180(W[c])          one piece of work per plane
///   weight gradient:  dW[c, t] += Σ_n (Σ_q dy[c, n](q) · x̂[c, n](s·q + tapₜ))   one piece per channel
///
/// The planes of a channel's weight gradient are added in image order (in Double), and every other
/// element is one sum of its own, so the bits do not depend on the thread count.
public final class DepthwiseConv2d: Module, InputGradientOptional {
    public let channels, stride: Int
    public let kernel = 3, padding = 1
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    private let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var input: Tensor?

    /// `weightInit` defaults to PyTorch's U(±1/√fan_in) with fan_in = 9 (one input channel per group).
    public init(_ store: ParameterStore, _ name: String, _ channels: Int, stride: Int = 1, bias: Bool = true,
                rng: RandomGenerator.Box, weightInit: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil) {
        precondition(stride == 1 || stride == 2, "DepthwiseConv2d: stride \(stride) (1 or 2 supported)")
        self.channels = channels; self.stride = stride
        self.store = store
        let bound: Float = 1 / 3   // 1/√(1·3·3)
        weight = store.declare("\(name).weight", shape: [channels, 1, 3, 3], kind: .weight,
                               initialize: weightInit ?? Initializer.uniform(bound, rng))
        self.bias = bias ? store.declare("\(name).bias", shape: [channels], kind: .bias,
                                         initialize: Initializer.uniform(bound, rng)) : nil
    }

    public var typeDescription: String {
        "Conv2d(\(channels), \(channels), kernel_size=(3, 3), stride=(\(stride), \(stride)), padding=(1, 1), groups=\(channels)"
            + (bias == nil ? ", bias=False)" : ")")
    }

    /// Multiply-accumulates of one image's forward pass for an H×W input.
    public func macs(height: Int, width: Int) -> Int {
        channels * ((height - 1) / stride + 1) * ((width - 1) / stride + 1) * 9
    }

    private func outputSize(_ x: Tensor) -> (Int, Int) {
        checkShape(x.shape.count == 4 && x.c == channels, typeDescription, "input shape \(x.shape), expected [N, \(channels), H, W]")
        checkShape(x.h > 0 && x.w > 0, typeDescription, "empty input \(x.shape)")
        return ((x.h - 1) / stride + 1, (x.w - 1) / stride + 1)
    }

    /// Runs `body(range, scratch)` over disjoint ranges of 0..<count in parallel, each with its own
    /// kernel scratch of `scratchFloats`. How the ranges fall changes no result (items are independent).
    private func pieces(_ count: Int, work: Int, scratchFloats: Int, _ workspace: Workspace,
                        _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let parts = min(count, 4 * Parallel.threads, max(1, work / Parallel.minimumWork))
        let scratch = workspace.floats(scratchFloats * Parallel.threads)
        Parallel.pool.run(pieces: parts) { part, worker in
            body(count * part / parts ..< count * (part + 1) / parts, scratch + worker * scratchFloats)
        }
    }

    // x: [N, C, H, W] → y: [N, C, Ho, Wo]   (CNHW), Ho = (H − 1)/s + 1
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let (ho, wo) = outputSize(x)
        let (n, h, w, s) = (x.n, x.h, x.w, stride)
        output.resize([n, channels, ho, wo])
        input = ctx.training ? x : nil
        let (src, dst, weights) = (x.data, output.data, store.value(weight))
        let b = bias.map { store.value($0) }
        pieces(channels * n, work: channels * n * ho * wo * 9, scratchFloats: fkp_depthwise3x3_scratch(h, w), ctx.workspace) { planes, scratch in
            for p in planes {
                let c = p / n
                fkp_depthwise3x3_forward(src + p * h * w, h, w, Int32(s), weights + c * 9, b?[c] ?? 0,
                                         dst + p * ho * wo, scratch)
            }
        }
        return output
    }

    // dy: [N, C, Ho, Wo] → dx: [N, C, H, W]; dW += Σ dy·x̂ at each tap, db += Σ dy
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        let (ho, wo) = outputSize(x)
        let (n, h, w, s) = (x.n, x.h, x.w, stride)
        checkShape(dy.count == channels * n * ho * wo, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        let (src, g) = (x.data, dy.data)
        let plane = ho * wo, scratchFloats = fkp_depthwise3x3_scratch(h, w)
        if let bias {
            let db = store.grad(bias), m = n * plane
            Parallel.chunks(channels, work: channels * m) { start, end in
                for c in start ..< end {
                    let d = g + c * m
                    db[c] += Float(blockedSum(m) { d[$0] })
                }
            }
        }
        let dW = store.grad(weight)
        pieces(channels, work: channels * n * plane * 9, scratchFloats: scratchFloats + 9, ctx.workspace) { range, scratch in
            // A plane's nine sums follow the kernel's scratch; the totals are on the stack (no allocation per channel).
            let sums = scratch + scratchFloats
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 9) { total in
                for c in range {
                    total.initialize(repeating: 0)
                    for image in 0 ..< n {
                        let p = c * n + image
                        fkp_depthwise3x3_weight_gradient(src + p * h * w, g + p * plane, h, w, Int32(s), sums, scratch)
                        for t in 0 ..< 9 { total[t] += Double(sums[t]) }
                    }
                    for t in 0 ..< 9 { dW[c * 9 + t] += Float(total[t]) }
                }
            }
        }
        guard computesInputGradient else { return gradInput }
        gradInput.resize(x.shape)
        let (dx, weights) = (gradInput.data, store.value(weight))
        pieces(channels * n, work: channels * n * h * w * 9, scratchFloats: scratchFloats, ctx.workspace) { planes, scratch in
            for p in planes {
                fkp_depthwise3x3_input_gradient(g + p * plane, h, w, Int32(s), weights + (p / n) * 9, dx + p * h * w, scratch)
            }
        }
        return gradInput
    }
}

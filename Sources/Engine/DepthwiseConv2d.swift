import CKernels

/// nn.Conv2d(C, C, 3, stride, padding=1, groups=C): a depthwise 3×3 convolution, stride 1 or 2
/// (MobileNet's inverted residuals). Parameters: `weight` [C, 1, 3, 3], `bias` [C]. Input and output
/// are CNHW.
///
/// Each channel only sees its own plane, so there is no GEMM to hand this to (im2col would build
/// a 9-row column matrix per channel for a 9-long dot product): the C kernels (depthwise3x3.c)
/// take a run of one channel's images at a time, as zero-bordered copies that stay in cache.
///
///   forward:          y[c, n] = x̂[c, n] ⋆ W[c] (+ b[c])                 pieces: runs of images of a channel
///   input gradient:   dx[c, n] = dy[c, n] spread ⋆ rot180(W[c])          } one pass per run,
///   weight gradient:  dW[c, t] += Σ_n Σ_q dy[c, n](q) · x̂[c, n](s·q + tapₜ)   } pieces: channels
///
/// A channel's weight gradient adds its runs' sums in order (in Double), and every other element is
/// one sum of its own, so the bits do not depend on the thread count.
public final class DepthwiseConv2d: Module, InputGradientOptional, CarriesNormalization {
    public let channels, stride: Int
    public let kernel = 3, padding = 1
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var input: Tensor?
    /// The BatchNorm2d that follows, applied at inference to each run of images as the kernel
    /// leaves it (ConvEpilogue.swift), and its scale and shift for one forward.
    public internal(set) var foldedNormalization: BatchNorm2d?
    var carriedChannels: Int? { channels }
    private let epilogueTerms = Tensor(shape: [0])

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

    private func outputSize(_ x: Tensor) -> (Int, Int) { outputSize(x.shape) }

    private func outputSize(_ shape: [Int]) -> (Int, Int) {
        checkShape(shape.count == 4 && shape[1] == channels, typeDescription, "input shape \(shape), expected [N, \(channels), H, W]")
        checkShape(shape[2] > 0 && shape[3] > 0, typeDescription, "empty input \(shape)")
        return ((shape[2] - 1) / stride + 1, (shape[3] - 1) / stride + 1)
    }

    /// The kernels take runs of images of one channel (a tall stack, see depthwise3x3.c): a fixed
    /// number per run for the plane size, so the runs, and every sum, follow the shape alone.
    private struct Runs {
        let images, perRun, count, scratchFloats: Int
        init(batch n: Int, height h: Int, width w: Int, stride s: Int) {
            images = n
            perRun = min(n, fkp_depthwise3x3_images_per_call(h, w, Int32(s)))
            count = (n + perRun - 1) / perRun
            scratchFloats = fkp_depthwise3x3_scratch(perRun, h, w, Int32(s))
        }
        /// The images of run r: (first, count).
        func run(_ r: Int) -> (Int, Int) { (r * perRun, min(perRun, images - r * perRun)) }
    }

    /// Runs `body(range, scratch)` over disjoint ranges of 0..<count in parallel, each with its own
    /// `scratchFloats` of scratch. How the ranges fall changes no result (items are independent).
    private func pieces(_ count: Int, work: Int, scratchFloats: Int, _ workspace: Workspace,
                        _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        let parts = min(count, 4 * Parallel.threads, max(1, work / Parallel.minimumWork))
        let scratch = workspace.floats(Self.workspaceFloats(perWorker: scratchFloats, threads: Parallel.threads))
        Parallel.pool.run(pieces: parts) { part, worker in
            body(count * part / parts ..< count * (part + 1) / parts, scratch + worker * scratchFloats)
        }
    }

    /// Every worker of the pool gets its own scratch.
    private static func workspaceFloats(perWorker: Int, threads: Int) -> Int { perWorker * threads }
    /// Backward's scratch per worker: the kernel's, then one run's nine tap sums.
    private static func backwardScratch(_ runs: Runs) -> Int { runs.scratchFloats + 9 }

    // The output, the input gradient (unless skipped) and the kernels' per-worker scratch.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let (ho, wo) = outputSize(x)
        let out = [x[0], channels, ho, wo]
        ledger.keep(.output, floats: Tensor.elementCount(out), typeDescription)
        if computesInputGradient { ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription) }
        let runs = Runs(batch: x[0], height: x[2], width: x[3], stride: stride)
        ledger.workspace(floats: Self.workspaceFloats(perWorker: runs.scratchFloats, threads: ledger.threads), typeDescription)
        ledger.workspace(floats: Self.workspaceFloats(perWorker: Self.backwardScratch(runs), threads: ledger.threads), typeDescription)
        return out
    }

    // x: [N, C, H, W] → y: [N, C, Ho, Wo]   (CNHW), Ho = (H − 1)/s + 1
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let (ho, wo) = outputSize(x)
        let (n, h, w, s) = (x.n, x.h, x.w, stride)
        output.resize([n, channels, ho, wo])
        input = ctx.training ? x : nil
        let (src, dst, weights) = (x.data, output.data, store.value(weight))
        let b = bias.map { store.value($0) }
        let runs = Runs(batch: n, height: h, width: w, stride: s)
        let epilogue = ctx.training || !ConvEpilogue.enabled ? nil : foldedNormalization?.epilogue(epilogueTerms)
        pieces(channels * runs.count, work: channels * n * ho * wo * 9, scratchFloats: runs.scratchFloats, ctx.workspace) { items, scratch in
            for item in items {
                let c = item / runs.count, (first, count) = runs.run(item % runs.count), p = c * n + first
                fkp_depthwise3x3_forward(src + p * h * w, count, h, w, Int32(s), weights + c * 9, b?[c] ?? 0,
                                         dst + p * ho * wo, scratch)
                epilogue?.apply(dst, rows: c ..< c + 1, cols: first * ho * wo ..< (first + count) * ho * wo, stride: n * ho * wo)
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
        let plane = ho * wo, runs = Runs(batch: n, height: h, width: w, stride: s)
        if let bias {
            let db = store.grad(bias), m = n * plane
            Parallel.chunks(channels, work: channels * m) { start, end in
                for c in start ..< end {
                    let d = g + c * m
                    db[c] += Float(blockedSum(m) { d[$0] })
                }
            }
        }
        // Per channel, its runs in order (one pass gives both gradients), their sums added in Double.
        if computesInputGradient { gradInput.resize(x.shape) }
        let dx: UnsafeMutablePointer<Float>? = computesInputGradient ? gradInput.data : nil
        let (weights, dW, scratchFloats) = (store.value(weight), store.grad(weight), runs.scratchFloats)
        pieces(channels, work: 2 * channels * n * plane * 9, scratchFloats: Self.backwardScratch(runs), ctx.workspace) { range, scratch in
            // A run's nine sums follow the kernel's scratch; the totals are on the stack (no allocation per channel).
            let sums = scratch + scratchFloats
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 9) { total in
                for c in range {
                    total.initialize(repeating: 0)
                    for r in 0 ..< runs.count {
                        let (first, count) = runs.run(r), p = c * n + first
                        fkp_depthwise3x3_backward(src + p * h * w, g + p * plane, count, h, w, Int32(s), weights + c * 9,
                                                  dx.map { $0 + p * h * w }, sums, scratch)
                        for t in 0 ..< 9 { total[t] += Double(sums[t]) }
                    }
                    for t in 0 ..< 9 { dW[c * 9 + t] += Float(total[t]) }
                }
            }
        }
        return gradInput
    }

    public func releaseBuffers() { output.release(); gradInput.release(); epilogueTerms.release(); input = nil }
}

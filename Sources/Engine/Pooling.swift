import CKernels

/// nn.MaxPool2d (square window, dilation 1, floor mode) and nn.AdaptiveAvgPool2d((1, 1)).
/// Input and output are CNHW: every (channel, image) plane is pooled on its own.

public final class MaxPool2d: Module {
    public let kernel, stride, padding: Int
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// For each output element of the last training forward, where its maximum was: the tap 0...3
    /// inside the window for 2×2/stride-2 pooling, else the index inside the input plane.
    private var argmax: [Int32] = []
    private var hasArgmax = false
    private var inputShape: [Int] = []

    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        precondition(kernel > 0 && (stride ?? kernel) > 0, "MaxPool2d: kernel and stride must be positive")
        precondition(padding >= 0 && padding <= kernel / 2, "MaxPool2d: padding \(padding) must be at most half the kernel \(kernel)")
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
    }

    public var typeDescription: String {
        "MaxPool2d(kernel_size=\(kernel), stride=\(stride), padding=\(padding), dilation=1, ceil_mode=False)"
    }

    private func outputShape(_ x: [Int]) -> [Int] {
        checkShape(x.count == 4, typeDescription, "input shape \(x), expected [N, C, H, W]")
        let (h, w, k, s, p) = (x[2], x[3], kernel, stride, padding)
        checkShape(h + 2 * p >= k && w + 2 * p >= k, typeDescription, "input \(x) is smaller than the window")
        return [x[0], x[1], (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1]
    }

    // The output, the input gradient and, kept for backward, one Int32 argmax per output.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        let out = outputShape(x), n = Tensor.elementCount(out)
        ledger.keep(.output, floats: n, typeDescription)
        ledger.keep(.saved, bytes: n * MemoryLayout<Int32>.stride, typeDescription)
        ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription)
        return out
    }

    /// 2×2 windows, stride 2, no padding: the common case (U-Net, the small nets), with its own
    /// loops (no window clipping, no index arithmetic, disjoint windows in backward).
    private var isHalving: Bool { kernel == 2 && stride == 2 && padding == 0 }

    // x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = ⌊(H + 2p − k)/s⌋ + 1; padding counts as −∞
    // (kernels: Sources/CKernels/maxpool.c, a run of planes per call)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 4, typeDescription, "input shape \(x.shape), expected [N, C, H, W]")
        let (h, w, k, s, p) = (x.h, x.w, kernel, stride, padding)
        checkShape(h + 2 * p >= k && w + 2 * p >= k, typeDescription, "input \(x.shape) is smaller than the window")
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        let planes = x.n * x.c
        output.resize([x.n, x.c, ho, wo])
        inputShape = x.shape
        hasArgmax = ctx.training
        if ctx.training && argmax.count < output.count {
            EngineAllocations.add((output.count - argmax.count) * MemoryLayout<Int32>.stride)
            argmax = [Int32](repeating: 0, count: output.count)
        }
        let (src, dst) = (UnsafePointer(x.data), output.data)
        let halving = isHalving
        argmax.withUnsafeMutableBufferPointer { idxBuffer in
            // nil in evaluation: nothing to remember for a backward pass.
            let idx = ctx.training ? idxBuffer.baseAddress! : nil
            Parallel.chunks(planes, work: planes * ho * wo * k * k) { start, end in
                let xp = src + start * h * w, yp = dst + start * ho * wo
                let ip = idx.map { $0 + start * ho * wo }
                if halving {
                    fkp_maxpool2x2_forward(xp, end - start, h, w, yp, ip)
                } else {
                    fkp_maxpool_forward(xp, end - start, h, w, Int32(k), Int32(s), Int32(p), yp, ip)
                }
            }
        }
        return output
    }

    // dx[argmax] += dy (overlapping windows may pick the same input twice)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        precondition(hasArgmax, "\(typeDescription): backward without a training forward")
        gradInput.resize(inputShape)
        let planes = inputShape[0] * inputShape[1]
        let (h, w) = (inputShape[2], inputShape[3])
        let (ho, wo) = (output.h, output.w)
        let (g, dx) = (UnsafePointer(dy.data), gradInput.data)
        let halving = isHalving
        argmax.withUnsafeBufferPointer { idx in
            let idx = idx.baseAddress!
            Parallel.chunks(planes, work: planes * h * w) { start, end in
                if halving {
                    fkp_maxpool2x2_backward(g + start * ho * wo, idx + start * ho * wo, end - start, h, w, dx + start * h * w)
                    return
                }
                for plane in start ..< end {
                    let dxp = dx + plane * h * w, gp = g + plane * ho * wo, ip = idx + plane * ho * wo
                    dxp.update(repeating: 0, count: h * w)
                    for o in 0 ..< ho * wo { dxp[Int(ip[o])] += gp[o] }
                }
            }
        }
        return gradInput
    }

    public func releaseBuffers() {
        output.release(); gradInput.release()
        EngineAllocations.add(-argmax.count * MemoryLayout<Int32>.stride)
        argmax = []; hasArgmax = false
    }
}

/// nn.AdaptiveAvgPool2d((1, 1)): the mean of each plane, [N, C, H, W] → [N, C, 1, 1].
/// (CNHW [N, C, 1, 1] is C×N, which `Flatten` turns into row-major [N, C].)
public final class AdaptiveAvgPool2d: Module {
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var inputShape: [Int] = []

    public init() {}
    public var typeDescription: String { "AdaptiveAvgPool2d(output_size=(1, 1))" }

    // y[c, n] = Σ x[c, n, :, :] / (H·W)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 4 && x.h * x.w > 0, typeDescription, "input shape \(x.shape), expected [N, C, H, W]")
        inputShape = x.shape
        let planes = x.n * x.c, plane = x.h * x.w
        output.resize([x.n, x.c, 1, 1])
        let (src, dst) = (x.data, output.data)
        let scale = 1 / Double(plane)
        Parallel.chunks(planes, work: planes * plane) { start, end in
            for i in start ..< end {
                let xp = src + i * plane
                dst[i] = Float(blockedSum(plane) { xp[$0] } * scale)
            }
        }
        return output
    }

    // dx[c, n, :, :] = dy[c, n] / (H·W)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(inputShape)
        let planes = inputShape[0] * inputShape[1], plane = inputShape[2] * inputShape[3]
        let (g, dx) = (dy.data, gradInput.data)
        let scale = 1 / Float(plane)
        Parallel.chunks(planes, work: planes * plane) { start, end in
            for i in start ..< end { (dx + i * plane).update(repeating: g[i] * scale, count: plane) }
        }
        return gradInput
    }

    // The [N, C, 1, 1] output and the input gradient.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(x.count == 4 && x[2] * x[3] > 0, typeDescription, "input shape \(x), expected [N, C, H, W]")
        let out = [x[0], x[1], 1, 1]
        ledger.keep(.output, floats: x[0] * x[1], typeDescription)
        ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription)
        return out
    }

    public func releaseBuffers() { output.release(); gradInput.release() }
}

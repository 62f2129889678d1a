/// nn.MaxPool2d (square window, dilation 1, floor mode) and nn.AdaptiveAvgPool2d((1, 1)).
/// Input and output are CNHW: every (channel, image) plane is pooled on its own.

public final class MaxPool2d: Module {
    public let kernel, stride, padding: Int
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// For each output element, the index inside its input plane of the maximum (for backward).
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []

    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        precondition(kernel > 0 && (stride ?? kernel) > 0, "MaxPool2d: kernel and stride must be positive")
        precondition(padding >= 0 && padding <= kernel / 2, "MaxPool2d: padding \(padding) must be at most half the kernel \(kernel)")
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
    }

    public var typeDescription: String {
        "MaxPool2d(kernel_size=\(kernel), stride=\(stride), padding=\(padding), dilation=1, ceil_mode=False)"
    }

    // x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = ⌊(H + 2p − k)/s⌋ + 1; padding counts as −∞
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 4, typeDescription, "input shape \(x.shape), expected [N, C, H, W]")
        let (h, w, k, s, p) = (x.h, x.w, kernel, stride, padding)
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        checkShape(h + 2 * p >= k && w + 2 * p >= k, typeDescription, "input \(x.shape) is smaller than the window")
        let planes = x.n * x.c
        output.resize([x.n, x.c, ho, wo])
        if argmax.count != output.count { argmax = [Int32](repeating: 0, count: output.count) }
        inputShape = x.shape
        let (src, dst) = (x.data, output.data)
        argmax.withUnsafeMutableBufferPointer { idx in
            let idx = idx.baseAddress!
            Parallel.chunks(planes, work: planes * ho * wo * k * k) { start, end in
                for plane in start ..< end {
                    let xp = src + plane * h * w
                    let base = plane * ho * wo
                    for oh in 0 ..< ho {
                        // The window clipped to the image (padding never wins: p ≤ k/2 leaves a real pixel).
                        let h0 = max(oh * s - p, 0), h1 = min(oh * s - p + k, h)
                        for ow in 0 ..< wo {
                            let w0 = max(ow * s - p, 0), w1 = min(ow * s - p + k, w)
                            var best = -Float.infinity, bestIndex = h0 * w + w0
                            for ih in h0 ..< h1 {
                                for iw in w0 ..< w1 {
                                    let v = xp[ih * w + iw]
                                    // First maximum wins; NaN propagates (as in PyTorch).
                                    if v > best || v.isNaN { best = v; bestIndex = ih * w + iw }
                                }
                            }
                            dst[base + oh * wo + ow] = best
                            idx[base + oh * wo + ow] = Int32(bestIndex)
                        }
                    }
                }
            }
        }
        return output
    }

    // dx[argmax] += dy (overlapping windows may pick the same input twice)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(inputShape)
        let planes = inputShape[0] * inputShape[1]
        let inPlane = inputShape[2] * inputShape[3], outPlane = output.h * output.w
        let (g, dx) = (dy.data, gradInput.data)
        argmax.withUnsafeBufferPointer { idx in
            let idx = idx.baseAddress!
            Parallel.chunks(planes, work: planes * (inPlane + outPlane)) { start, end in
                for plane in start ..< end {
                    let dxp = dx + plane * inPlane
                    dxp.update(repeating: 0, count: inPlane)
                    for o in plane * outPlane ..< (plane + 1) * outPlane { dxp[Int(idx[o])] += g[o] }
                }
            }
        }
        return gradInput
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
}

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
                for plane in start ..< end {
                    let xp = src + plane * h * w, yp = dst + plane * ho * wo
                    let ip = idx.map { $0 + plane * ho * wo }
                    if halving {
                        maxPool2x2(xp, yp, ip, w: w, ho: ho, wo: wo)
                    } else {
                        maxPoolWindows(xp, yp, ip, h: h, w: w, ho: ho, wo: wo, k: k, s: s, p: p)
                    }
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
                for plane in start ..< end {
                    let dxp = dx + plane * h * w, gp = g + plane * ho * wo, ip = idx + plane * ho * wo
                    if halving {
                        unpool2x2(gp, ip, dxp, h: h, w: w, ho: ho, wo: wo)
                    } else {
                        dxp.update(repeating: 0, count: h * w)
                        for o in 0 ..< ho * wo { dxp[Int(ip[o])] += gp[o] }
                    }
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

// The window scans keep PyTorch's rule: the first maximum wins, and a NaN replaces the running
// maximum (so NaN propagates). Written with selects rather than branches: random activations
// make the comparisons unpredictable.

/// One plane, 2×2 windows at stride 2; `taps` (when training) gets 0...3 = row·2 + column.
@inline(__always)
private func maxPool2x2(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ taps: UnsafeMutablePointer<Int32>?,
                       w: Int, ho: Int, wo: Int) {
    for oh in 0 ..< ho {
        let r0 = x + 2 * oh * w, r1 = r0 + w
        let yr = y + oh * wo
        if let taps {
            let tr = taps + oh * wo
            for ow in 0 ..< wo {
                let (a, b, c, d) = (r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1])
                var best = a, tap: Int32 = 0
                let tb = b > best || b.isNaN; best = tb ? b : best; tap = tb ? 1 : tap
                let tc = c > best || c.isNaN; best = tc ? c : best; tap = tc ? 2 : tap
                let td = d > best || d.isNaN; best = td ? d : best; tap = td ? 3 : tap
                yr[ow] = best; tr[ow] = tap
            }
        } else {
            for ow in 0 ..< wo {
                let (a, b, c, d) = (r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1])
                var best = a
                best = b > best || b.isNaN ? b : best
                best = c > best || c.isNaN ? c : best
                best = d > best || d.isNaN ? d : best
                yr[ow] = best
            }
        }
    }
}

/// The adjoint of `maxPool2x2`: windows are disjoint, so every input gets either its window's
/// gradient or 0, written once (no zeroing pass, no scattered adds).
@inline(__always)
private func unpool2x2(_ g: UnsafePointer<Float>, _ taps: UnsafePointer<Int32>, _ dx: UnsafeMutablePointer<Float>,
                       h: Int, w: Int, ho: Int, wo: Int) {
    for oh in 0 ..< ho {
        let r0 = dx + 2 * oh * w, r1 = r0 + w
        let gr = g + oh * wo, tr = taps + oh * wo
        for ow in 0 ..< wo {
            let (gi, t) = (gr[ow], tr[ow])
            r0[2 * ow] = t == 0 ? gi : 0
            r0[2 * ow + 1] = t == 1 ? gi : 0
            r1[2 * ow] = t == 2 ? gi : 0
            r1[2 * ow + 1] = t == 3 ? gi : 0
        }
        // Odd width: the last column is in no window.
        if 2 * wo < w { r0[w - 1] = 0; r1[w - 1] = 0 }
    }
    // Odd height: the last row is in no window.
    if 2 * ho < h { (dx + 2 * ho * w).update(repeating: 0, count: (h - 2 * ho) * w) }
}

/// One plane, any window; `indices` (when training) gets the input-plane index of each maximum.
/// (A row-at-a-time formulation over independent outputs measured slower here: the strided
/// loads and the NaN rule do not vectorise.)
@inline(__always)
private func maxPoolWindows(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ indices: UnsafeMutablePointer<Int32>?,
                            h: Int, w: Int, ho: Int, wo: Int, k: Int, s: Int, p: Int) {
    for oh in 0 ..< ho {
        // The window clipped to the image (padding never wins: p ≤ k/2 leaves a real pixel).
        let h0 = max(oh * s - p, 0), h1 = min(oh * s - p + k, h)
        for ow in 0 ..< wo {
            let w0 = max(ow * s - p, 0), w1 = min(ow * s - p + k, w)
            var best = -Float.infinity, bestIndex = h0 * w + w0
            for ih in h0 ..< h1 {
                let row = x + ih * w
                for iw in w0 ..< w1 {
                    let v = row[iw]
                    let take = v > best || v.isNaN
                    best = take ? v : best
                    bestIndex = take ? ih * w + iw : bestIndex
                }
            }
            y[oh * wo + ow] = best
            indices?[oh * wo + ow] = Int32(bestIndex)
        }
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

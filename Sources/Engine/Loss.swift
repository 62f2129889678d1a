import Foundation

/// A training loss with PyTorch's mean reduction. `forward` returns the loss and *also* computes
/// `gradient` = dLoss/dPrediction (same shape and layout as the prediction; valid until the next
/// forward). The target has as many elements as the prediction, in the same layout.
/// Sums are reduced in fixed blocks and added in order (Double), so the value does not depend on
/// the thread count.
public protocol Loss: AnyObject {
    func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float
    var gradient: Tensor { get }
}

/// nn.MSELoss(): mean (p − t)²; gradient 2(p − t)/count.
public final class MSELoss: Loss {
    public let gradient = Tensor(shape: [0])
    public init() {}

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        gradient.resize(prediction.shape)
        let (p, g, n) = (prediction.data, gradient.data, prediction.count)
        let scale = 2 / Float(n)
        let total = orderedBlockSum(n, work: 3 * n) { start, end in
            blockedSum(end - start) { j in
                let i = start + j, d = p[i] - target[i]
                g[i] = scale * d
                return d * d
            }
        }
        return Float(total / Double(n))
    }
}

/// nn.L1Loss(): mean |p − t|; gradient sign(p − t)/count (0 where p = t, as torch.sign gives).
public final class L1Loss: Loss {
    public let gradient = Tensor(shape: [0])
    public init() {}

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        gradient.resize(prediction.shape)
        let (p, g, n) = (prediction.data, gradient.data, prediction.count)
        let scale = 1 / Float(n)
        let total = orderedBlockSum(n, work: 3 * n) { start, end in
            blockedSum(end - start) { j in
                let i = start + j, d = p[i] - target[i]
                g[i] = d > 0 ? scale : (d < 0 ? -scale : 0)
                return abs(d)
            }
        }
        return Float(total / Double(n))
    }
}

/// MSE on Gaussian heatmap targets with the foreground weighted: pixels whose target exceeds
/// `threshold` count `positiveWeight` times. A 68-channel heatmap is almost all background, and
/// plain MSE is happily minimised by predicting zeros everywhere; the weight pulls the peaks up.
/// Loss = Σ wᵢ (pᵢ − tᵢ)² / count (plain MSELoss when positiveWeight = 1); gradient 2wᵢ(pᵢ − tᵢ)/count.
public final class HeatmapMSELoss: Loss {
    public let positiveWeight, threshold: Float
    public let gradient = Tensor(shape: [0])

    public init(positiveWeight: Float, threshold: Float = 0.1) {
        self.positiveWeight = positiveWeight
        self.threshold = threshold
    }

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        gradient.resize(prediction.shape)
        let (p, g, n) = (prediction.data, gradient.data, prediction.count)
        let (scale, weight, threshold) = (2 / Float(n), positiveWeight, threshold)
        let total = orderedBlockSum(n, work: 4 * n) { start, end in
            blockedSum(end - start) { j in
                let i = start + j, d = p[i] - target[i]
                let w: Float = target[i] > threshold ? weight : 1
                g[i] = scale * w * d
                return w * d * d
            }
        }
        return Float(total / Double(n))
    }
}

/// Cross-entropy between a softmax over each heatmap's H·W pixels and the target heatmap
/// normalised to sum 1 (a distribution over the landmark's position). Predictions and targets
/// are [N, K, H, W] in the engine's CNHW layout (each (n, k) plane contiguous, at k·N + n). Per plane: loss = logΣexp(p) − Σ t̂·p,
/// gradient = softmax(p) − t̂. Planes whose target sums to ≤ 1e-12 (a landmark off the image)
/// contribute nothing; the loss and gradient are the mean over the remaining planes. A non-finite
/// logit anywhere, skipped planes included, makes the loss NaN (`PlaneLosses`).
public final class SpatialSoftmaxCrossEntropy: Loss {
    public let gradient = Tensor(shape: [0])
    private var perPlane = PlaneLosses()

    public init() {}

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        checkShape(prediction.shape.count == 4, "SpatialSoftmaxCrossEntropy", "prediction shape \(prediction.shape), expected [N, K, H, W]")
        gradient.resize(prediction.shape)
        let planes = prediction.n * prediction.c, size = prediction.h * prediction.w
        let (p, g) = (prediction.data, gradient.data)
        perPlane.run(count: planes, work: planes * size * 8) { plane in
            let (pp, tp, gp) = (p + plane * size, target + plane * size, g + plane * size)
            let mass = blockedSum(size) { tp[$0] }
            if !(mass > 1e-12) { return PlaneLosses.skip(logits: pp, gradient: gp, count: size) }
            var peak = -Float.infinity
            for i in 0 ..< size { peak = max(peak, pp[i]) }
            // Softmax with the maximum subtracted: exp never overflows.
            let expSum = blockedSum(size) { i in
                let e = Foundation.exp(pp[i] - peak)
                gp[i] = e
                return e
            }
            let logSumExp = Double(peak) + Foundation.log(expSum)
            let invExp = Float(1 / expSum), invMass = Float(1 / mass)
            let dot = blockedSum(size) { i in
                let t = tp[i] * invMass
                gp[i] = gp[i] * invExp - t
                return t * pp[i]
            }
            return logSumExp - dot
        }
        return perPlane.mean(samples: prediction.n, scaling: gradient)
    }
}

/// Per-plane heatmap losses and which planes have a target. The loss is the mean over the planes
/// with a target, and the summed gradient is scaled to match. Validity is its own mask, never a
/// NaN in the loss: a NaN or infinite logit must reach the trainer as a NaN loss (which stops the
/// run at that step), not vanish as if its plane had been skipped.
struct PlaneLosses {
    private var loss: [Double] = []
    private var valid: [Bool] = []

    /// Runs `body(plane)` for every plane, in parallel. It returns the plane's loss, or nil for a
    /// plane without a target (see `skip`).
    mutating func run(count: Int, work: Int, _ body: (Int) -> Double?) {
        if loss.count != count {
            loss = [Double](repeating: 0, count: count)
            valid = [Bool](repeating: false, count: count)
        }
        loss.withUnsafeMutableBufferPointer { losses in
            valid.withUnsafeMutableBufferPointer { flags in
                let (losses, flags) = (losses.baseAddress!, flags.baseAddress!)
                Parallel.chunks(count, work: work) { start, end in
                    for plane in start ..< end {
                        let value = body(plane)
                        (losses[plane], flags[plane]) = (value ?? 0, value != nil)
                    }
                }
            }
        }
    }

    /// A plane without a target: zero gradient and no loss (nil), unless one of its logits is NaN
    /// or infinite, which makes the plane, and so the mean, NaN.
    @inline(__always)
    static func skip(logits: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, count: Int) -> Double? {
        gradient.update(repeating: 0, count: count)
        // 0·x is NaN exactly when x is NaN or infinite.
        let poison = blockedSum(count) { logits[$0] * 0 }
        return poison.isNaN ? .nan : nil
    }

    /// The mean over the planes with a target, with `gradient` scaled by 1 / (their count). The
    /// planes are [N, K] stored channel-major (plane (n, k) at k·N + n, the engine's CNHW) and are
    /// added sample by sample, so the value is the same bits as over NCHW planes.
    func mean(samples n: Int, scaling gradient: Tensor) -> Float {
        var total = 0.0, count = 0
        let k = loss.count / max(n, 1)
        for sample in 0 ..< n {
            for channel in 0 ..< k where valid[channel * n + sample] {
                total += loss[channel * n + sample]
                count += 1
            }
        }
        guard count > 0 else { return 0 }
        let scale = 1 / Float(count), n = gradient.count, g = gradient.data
        Parallel.chunks(n, work: n) { start, end in
            for i in start ..< end { g[i] *= scale }
        }
        return Float(total / Double(count))
    }
}

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

/// Σ over fixed blocks of 0..<count of `body(start, end)`, blocks run in parallel and are added in order.
@inline(__always)
func orderedBlockSum(_ count: Int, work: Int, _ body: (Int, Int) -> Double) -> Double {
    let block = 1 << 16
    let blocks = (count + block - 1) / block
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { p in
        let p = p.baseAddress!
        Parallel.chunks(blocks, work: work) { start, end in
            for b in start ..< end { p[b] = body(b * block, min(count, (b + 1) * block)) }
        }
    }
    return partial.reduce(0, +)
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
/// are NCHW [N, K, H, W] (each (n, k) plane contiguous). Per plane: loss = logΣexp(p) − Σ t̂·p,
/// gradient = softmax(p) − t̂. Planes whose target sums to ≤ 1e-12 (a landmark off the image)
/// contribute nothing; the loss and gradient are the mean over the remaining planes.
public final class SpatialSoftmaxCrossEntropy: Loss {
    public let gradient = Tensor(shape: [0])
    private var planeLoss: [Double] = []

    public init() {}

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        checkShape(prediction.shape.count == 4, "SpatialSoftmaxCrossEntropy", "prediction shape \(prediction.shape), expected [N, K, H, W]")
        gradient.resize(prediction.shape)
        let planes = prediction.n * prediction.c, size = prediction.h * prediction.w
        let (p, g) = (prediction.data, gradient.data)
        if planeLoss.count != planes { planeLoss = [Double](repeating: 0, count: planes) }
        // Per plane: NaN marks a plane without target mass.
        planeLoss.withUnsafeMutableBufferPointer { losses in
            let losses = losses.baseAddress!
            Parallel.chunks(planes, work: planes * size * 8) { start, end in
                for plane in start ..< end {
                    let (pp, tp, gp) = (p + plane * size, target + plane * size, g + plane * size)
                    let mass = blockedSum(size) { tp[$0] }
                    if !(mass > 1e-12) {
                        gp.update(repeating: 0, count: size)
                        losses[plane] = .nan
                        continue
                    }
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
                    losses[plane] = logSumExp - dot
                }
            }
        }
        return averageOverValidPlanes(planeLoss, gradient: gradient)
    }
}

/// Per-plane heatmap losses: the mean of the planes' losses (NaN marks a plane without target
/// mass, left out), with the summed gradient scaled to match.
func averageOverValidPlanes(_ planeLoss: [Double], gradient: Tensor) -> Float {
    var total = 0.0, valid = 0
    for l in planeLoss where !l.isNaN { total += l; valid += 1 }
    guard valid > 0 else { return 0 }
    let scale = 1 / Float(valid), count = gradient.count, g = gradient.data
    Parallel.chunks(count, work: count) { start, end in
        for i in start ..< end { g[i] *= scale }
    }
    return Float(total / Double(valid))
}

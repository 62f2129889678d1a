import Foundation

/// Heatmap loss for landmark models that must converge quickly: the spatial softmax
/// cross-entropy against the Gaussian target (which shapes a single sharp peak) plus a
/// coordinate term on the softmax's expected position (soft-argmax, "integral regression"),
/// which gives every pixel's logit a gradient towards the right place from the first step,
/// like a regression loss, instead of waiting for the peak to form where the target is.
///
/// Per plane with logits z, softmax p, pixel coordinates (x_i, y_i), target t (normalised to t̂):
///   x̂ = Σ p_i x_i,  x* = Σ t̂_i x_i (and y likewise);
///   loss = CE(p, t̂) + w · (huber(x̂ − x*) + huber(ŷ − y*)) / σ   (huber with δ = 1 pixel)
///   ∂loss/∂z_i = (p_i − t̂_i) + w/σ · p_i · (h'(x̂ − x*)(x_i − x̂) + h'(ŷ − y*)(y_i − ŷ)).
/// Planes without target mass (landmark off the crop) are skipped; the result is the mean over
/// the rest (NaN when any logit is not finite, `PlaneLosses`). Predictions and targets are
/// [N, K, H, W] in the engine's CNHW layout (plane (n, k) at k·N + n).
public final class SoftArgmaxHeatmapLoss: Loss {
    public let sigma: Float
    public let coordinateWeight: Float
    public let gradient = Tensor(shape: [0])
    private var perPlane = PlaneLosses()

    public init(sigma: Float, coordinateWeight: Float = 1) {
        self.sigma = sigma
        self.coordinateWeight = coordinateWeight
    }

    @inline(__always) static func huberSlope(_ d: Float) -> Float { max(-1, min(1, d)) }
    @inline(__always) static func huber(_ d: Float) -> Float { abs(d) < 1 ? 0.5 * d * d : abs(d) - 0.5 }

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        checkShape(prediction.shape.count == 4, "SoftArgmaxHeatmapLoss", "prediction shape \(prediction.shape), expected [N, K, H, W]")
        gradient.resize(prediction.shape)
        let planes = prediction.n * prediction.c, (height, width) = (prediction.h, prediction.w), size = height * width
        let (z, g) = (prediction.data, gradient.data)
        let weight = coordinateWeight / sigma
        perPlane.run(count: planes, work: planes * size * 12) { plane in
            let (zp, tp, gp) = (z + plane * size, target + plane * size, g + plane * size)
            var mass = 0.0, tx = 0.0, ty = 0.0, peak = -Float.infinity
            for y in 0 ..< height {
                for x in 0 ..< width {
                    let t = Double(tp[y * width + x])
                    mass += t; tx += t * Double(x); ty += t * Double(y)
                    peak = max(peak, zp[y * width + x])
                }
            }
            guard mass > 1e-12 else { return PlaneLosses.skip(logits: zp, gradient: gp, count: size) }
            tx /= mass; ty /= mass
            var expSum = 0.0, ex = 0.0, ey = 0.0, dot = 0.0
            for y in 0 ..< height {
                for x in 0 ..< width {
                    let i = y * width + x
                    let e = Foundation.exp(Double(zp[i] - peak))
                    gp[i] = Float(e)
                    expSum += e; ex += e * Double(x); ey += e * Double(y)
                    dot += Double(tp[i]) * Double(zp[i])
                }
            }
            let mx = Float(ex / expSum), my = Float(ey / expSum)
            let dx = mx - Float(tx), dy = my - Float(ty)
            let sx = weight * Self.huberSlope(dx), sy = weight * Self.huberSlope(dy)
            let invExp = Float(1 / expSum), invMass = Float(1 / mass)
            for y in 0 ..< height {
                for x in 0 ..< width {
                    let i = y * width + x
                    let p = gp[i] * invExp
                    gp[i] = p - tp[i] * invMass + p * (sx * (Float(x) - mx) + sy * (Float(y) - my))
                }
            }
            let crossEntropy = Double(peak) + Foundation.log(expSum) - dot / mass
            return crossEntropy + Double(weight * (Self.huber(dx) + Self.huber(dy)))
        }
        return perPlane.mean(samples: prediction.n, scaling: gradient)
    }
}

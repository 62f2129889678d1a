import Foundation

/// Wing loss (Feng et al., "Wing Loss for Robust Facial Landmark Localisation with Convolutional
/// Neural Networks", CVPR 2018) for coordinate regression, with PyTorch-style mean reduction.
/// Per element, with x = p − t:
///   wing(x) = w·ln(1 + |x|/ε)   for |x| < w
///           = |x| − C           otherwise,  C = w − w·ln(1 + w/ε)  (continuous at |x| = w)
/// loss = mean wing(x); gradient = wing'(x)/count with wing'(x) = sign(x)·w/(ε + |x|) inside,
/// sign(x) outside (0 at x = 0, as torch.abs's gradient gives).
///
/// Units and defaults: the regression targets here are keypoints normalised to the crop (x/width,
/// y/height, so 0 … 1), not pixels. Feng et al. used w = 10, ε = 2 *pixels* on 128×128 inputs;
/// the defaults are those values as fractions of the crop, w = 10/128 ≈ 0.078 and ε = 2/128 ≈
/// 0.0156 (ratio w/ε = 5 kept). The log region then covers errors up to ~8 % of the crop (≈ 6–7 %
/// of the face box at the usual +20 % enlargement), which is where the small and medium errors
/// that dominate the NME of a reasonably trained model live: there the gradient w/(ε + |x|) is
/// large (up to w/ε = 5 times L1's), pulling already-close points in further, while outliers get
/// L1's bounded gradient. For a different crop size the same pixel values would still be
/// 10/S and 2/S; the loss is scale-aware only through these two numbers.
public final class WingLoss: Loss {
    public let width: Float, curvature: Float
    /// C = w − w·ln(1 + w/ε): joins the two pieces continuously.
    public let offset: Float
    public let gradient = Tensor(shape: [0])

    public static let defaultWidth: Float = 10.0 / 128.0
    public static let defaultCurvature: Float = 2.0 / 128.0

    /// `width` is Feng's w, `curvature` his ε (both in the target's units).
    public init(width: Float = WingLoss.defaultWidth, curvature: Float = WingLoss.defaultCurvature) {
        precondition(width > 0 && curvature > 0, "WingLoss: w and ε must be positive")
        self.width = width
        self.curvature = curvature
        offset = width - width * Foundation.log1p(width / curvature)
    }

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        gradient.resize(prediction.shape)
        let (p, g, n) = (prediction.data, gradient.data, prediction.count)
        let scale = 1 / Float(n)
        let (w, eps, c) = (width, curvature, offset)
        let total = orderedBlockSum(n, work: 12 * n) { start, end in
            blockedSum(end - start) { j in
                let i = start + j, d = p[i] - target[i], a = abs(d)
                let sign: Float = d > 0 ? 1 : (d < 0 ? -1 : 0)
                if a < w {
                    g[i] = sign * scale * w / (eps + a)
                    return w * Foundation.log1p(a / eps)
                }
                g[i] = sign * scale
                return a - c
            }
        }
        return Float(total / Double(n))
    }
}

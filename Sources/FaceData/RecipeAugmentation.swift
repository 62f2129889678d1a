/// Augmentations for training landmark regressors on a few thousand faces (the "beat dlib"
/// recipe): occluding rectangles, Gaussian blur, gamma and face-box jitter. Each is off by default
/// (`AugmentationParameters`), and while off it draws no random numbers and touches no pixel, so
/// runs without them stay bit-identical to before.
///
/// Where they act in `SamplePipeline.prepare`:
/// - box jitter moves / scales the face box before the crop transform is built (a detector's error),
///   so keypoints and pixels move together through the one matrix;
/// - after the warp, on grey values in [0, 1]: the occluder, then blur, then gamma (the occluder
///   is part of the scene, so the camera's blur and response apply to it too); then the seed's
///   brightness / contrast and the normalisation, as before.
import Foundation

/// A random error of the face box: centre moved by (shiftX · box width, shiftY · box height), size
/// scaled by `scale` about the moved centre.
public struct BoxJitter: Sendable, Equatable {
    public var shiftX: Float, shiftY: Float, scale: Float

    public init(shiftX: Float = 0, shiftY: Float = 0, scale: Float = 1) {
        self.shiftX = shiftX; self.shiftY = shiftY; self.scale = scale
    }

    public static let none = BoxJitter()
    public var isNone: Bool { shiftX == 0 && shiftY == 0 && scale == 1 }

    public func apply(to box: Box) -> Box {
        let cx = box.x + box.width / 2 + shiftX * box.width, cy = box.y + box.height / 2 + shiftY * box.height
        let w = box.width * scale, h = box.height * scale
        return Box(x: cx - w / 2, y: cy - h / 2, width: w, height: h)
    }
}

/// A rectangle over the crop: centre and size as fractions of the crop's width / height, filled
/// with one grey value, or with uniform noise from `noiseSeed` when that is set.
public struct Occlusion: Sendable, Equatable {
    public var centreX: Float, centreY: Float, width: Float, height: Float
    public var grey: Float
    public var noiseSeed: UInt64?

    public init(centreX: Float, centreY: Float, width: Float, height: Float, grey: Float, noiseSeed: UInt64? = nil) {
        self.centreX = centreX; self.centreY = centreY; self.width = width; self.height = height
        self.grey = grey; self.noiseSeed = noiseSeed
    }

    /// The covered pixels of a cropWidth × cropHeight crop: columns x0..<x1, rows y0..<y1 (clipped).
    public func pixelRect(cropWidth: Int, cropHeight: Int) -> (x0: Int, y0: Int, x1: Int, y1: Int) {
        func edge(_ v: Float, _ size: Int) -> Int { min(max(Int((v * Float(size)).rounded()), 0), size) }
        return (edge(centreX - width / 2, cropWidth), edge(centreY - height / 2, cropHeight),
                edge(centreX + width / 2, cropWidth), edge(centreY + height / 2, cropHeight))
    }
}

extension Augmentation {
    /// Draws the recipe augmentations that `p` switches on, in a fixed order, after the seed's
    /// draws; nothing at all for those that are off.
    mutating func drawRecipe(_ p: AugmentationParameters, rng: inout SplitMix64) {
        if p.boxJitter > 0 {
            boxJitter = BoxJitter(shiftX: rng.symmetric(p.boxJitter), shiftY: rng.symmetric(p.boxJitter),
                                  scale: 1 + rng.symmetric(p.boxJitter))
        }
        if p.occlusionProbability > 0, rng.unit() < p.occlusionProbability {
            // Sides between a quarter of the maximum and the maximum: big enough to hide something.
            let size = max(p.occlusionMaxSize, 0)
            let w = size * (0.25 + 0.75 * rng.unit()), h = size * (0.25 + 0.75 * rng.unit())
            let cx = rng.unit(), cy = rng.unit()
            let noise = rng.unit() < p.occlusionNoiseProbability
            let grey = rng.unit()
            let seed = rng.next()
            occlusion = Occlusion(centreX: cx, centreY: cy, width: w, height: h, grey: grey, noiseSeed: noise ? seed : nil)
        }
        if p.blurProbability > 0, rng.unit() < p.blurProbability {
            blurSigma = rng.unit() * max(p.blurMaxSigma, 0)
        }
        if p.gammaRange > 0 {
            gamma = Float(Foundation.exp(Double(rng.symmetric(Float(Foundation.log1p(Double(p.gammaRange)))))))
        }
        reframe = p.reframe
    }

    /// Whether `applyPixelEffects` changes anything.
    public var hasPixelEffects: Bool { occlusion != nil || blurSigma > 0 || gamma != 1 }

    /// Occlusion, blur and gamma on a width × height crop of grey values in [0, 1], in place.
    public func applyPixelEffects(to image: UnsafeMutablePointer<Float>, width: Int, height: Int) {
        if let occlusion { Self.occlude(image, width: width, height: height, occlusion) }
        if blurSigma > 0 { Self.gaussianBlur(image, width: width, height: height, sigma: blurSigma) }
        if gamma != 1 {
            let g = gamma
            for i in 0..<(width * height) { image[i] = Foundation.pow(max(image[i], 0), g) }
        }
    }

    static func occlude(_ image: UnsafeMutablePointer<Float>, width: Int, height: Int, _ o: Occlusion) {
        let r = o.pixelRect(cropWidth: width, cropHeight: height)
        guard r.x0 < r.x1, r.y0 < r.y1 else { return }
        if let seed = o.noiseSeed {
            var noise = SplitMix64(seed: seed)
            for y in r.y0..<r.y1 { for x in r.x0..<r.x1 { image[y * width + x] = noise.unit() } }
        } else {
            for y in r.y0..<r.y1 { (image + y * width + r.x0).update(repeating: o.grey, count: r.x1 - r.x0) }
        }
    }

    /// The normalised 1-D Gaussian, radius ⌈3σ⌉ (at least 1).
    static func gaussianKernel(sigma: Float) -> [Float] {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        let s = Double(max(sigma, 1e-3))
        let raw = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * s * s)) }
        let total = raw.reduce(0, +)
        return raw.map { Float($0 / total) }
    }

    /// Separable Gaussian blur with half-sample symmetric borders (… c b a | a b c … c b a | a b c …).
    /// With that border the blur matrix is symmetric and its rows sum to 1, so its columns do too:
    /// the image's mean is kept (up to rounding), and no border darkening or brightening.
    static func gaussianBlur(_ image: UnsafeMutablePointer<Float>, width: Int, height: Int, sigma: Float) {
        let kernel = gaussianKernel(sigma: sigma)
        let radius = kernel.count / 2
        @inline(__always) func reflect(_ i: Int, _ n: Int) -> Int {
            let period = 2 * n
            let m = ((i % period) + period) % period
            return m < n ? m : period - 1 - m
        }
        var line = [Float](repeating: 0, count: max(width, height))
        kernel.withUnsafeBufferPointer { k in
            line.withUnsafeMutableBufferPointer { tmp in
                for y in 0..<height {
                    let row = image + y * width
                    for x in 0..<width {
                        var sum: Float = 0
                        for j in -radius...radius { sum += k[j + radius] * row[reflect(x + j, width)] }
                        tmp[x] = sum
                    }
                    row.update(from: tmp.baseAddress!, count: width)
                }
                for x in 0..<width {
                    for y in 0..<height {
                        var sum: Float = 0
                        for j in -radius...radius { sum += k[j + radius] * image[reflect(y + j, height) * width + x] }
                        tmp[y] = sum
                    }
                    for y in 0..<height { image[y * width + x] = tmp[y] }
                }
            }
        }
    }
}

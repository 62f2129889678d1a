/// Random geometric and photometric augmentation, drawn per sample from a seeded generator. The
/// geometry is an affine map in output-crop pixels about the crop centre, composed with the crop
/// transform so the image is resampled once.
import Foundation

/// Ranges to draw from; the defaults are the seed project's settings.
public struct AugmentationParameters: Sendable, Equatable {
    /// x' = x + k·y with k in ±maxShearX (0.08 = 8 %).
    public var maxShearX: Float = 0.08
    /// Shift in ±maxShift of the crop width / height.
    public var maxShift: Float = 0.10
    /// Shrinks the face by up to this fraction (0.2: scale 0.8 ... 1).
    public var maxZoomOut: Float = 0.20
    /// Enlarges the face by up to this fraction: scale 1 − maxZoomOut ... 1 + maxZoomIn (300-W
    /// recipes such as mmpose's draw ±25 %: both 0.25). 0 keeps the seed's zoom-out-only draw.
    public var maxZoomIn: Float = 0
    public var maxRotationDegrees: Float = 22
    /// Added to grey values in [0, 1].
    public var maxBrightness: Float = 0.10
    /// Contrast factor in 1 ± maxContrast, about mid-grey.
    public var maxContrast: Float = 0.20
    /// Chance of a horizontal flip (which also swaps left/right keypoint labels).
    public var flipProbability: Float = 0.5
    /// Draws tried before giving up on a sample whose keypoints keep leaving the frame; it then
    /// falls back to the unaugmented crop.
    public var attempts: Int = 5

    // Recipe augmentations (RecipeAugmentation.swift). Every one is off by default, and while off
    // it draws no random numbers: the draws above, and so existing runs, stay bit-identical.
    /// Chance of a rectangle over part of the crop (a hand, a microphone, hair).
    public var occlusionProbability: Float = 0
    /// The rectangle's width and height are each up to this fraction of the crop's.
    public var occlusionMaxSize: Float = 0.4
    /// Chance that an occluder is filled with noise rather than one random grey.
    public var occlusionNoiseProbability: Float = 0.5
    /// Chance of a Gaussian blur, σ uniform in 0 ... blurMaxSigma crop pixels.
    public var blurProbability: Float = 0
    public var blurMaxSigma: Float = 1.5
    /// Gamma v^γ with ln γ uniform in ±ln(1 + gammaRange) (0.3: γ in 0.77 ... 1.3); 0 = off.
    public var gammaRange: Float = 0
    /// Detector-like error of the face box before cropping: its centre moves by up to ±boxJitter
    /// of the box's width / height and its size scales by 1 ± boxJitter; 0 = off.
    public var boxJitter: Float = 0
    /// Re-crop each augmented face so that its box keeps the labelled box's relation to the
    /// keypoints (`SamplePipeline.sampleTransform`): rotation, shear and the flip still change the
    /// face, but the crop frames it as validation and prediction crops frame faces. Zoom and shift
    /// are absorbed by the re-crop. Draws no random numbers.
    public var reframe = false

    public init() {}

    /// Everything off: the identity.
    public static var none: AugmentationParameters {
        var p = AugmentationParameters()
        p.maxShearX = 0; p.maxShift = 0; p.maxZoomOut = 0; p.maxZoomIn = 0; p.maxRotationDegrees = 0
        p.maxBrightness = 0; p.maxContrast = 0; p.flipProbability = 0
        return p
    }
}

/// One draw of augmentation settings.
public struct Augmentation: Sendable, Equatable {
    public var flip = false
    public var shearX: Float = 0
    /// Fractions of the crop width / height.
    public var shiftX: Float = 0, shiftY: Float = 0
    /// Scale 1 − zoomOut: positive shrinks the face, negative enlarges it.
    public var zoomOut: Float = 0
    public var rotationDegrees: Float = 0
    public var brightness: Float = 0
    public var contrast: Float = 1
    /// Recipe augmentations (RecipeAugmentation.swift); the defaults do nothing.
    public var boxJitter = BoxJitter.none
    public var occlusion: Occlusion? = nil
    /// Gaussian blur σ in crop pixels (0: none).
    public var blurSigma: Float = 0
    public var gamma: Float = 1
    /// Re-crop the augmented face from its keypoints (`AugmentationParameters.reframe`).
    public var reframe = false

    public init(flip: Bool = false, shearX: Float = 0, shiftX: Float = 0, shiftY: Float = 0, zoomOut: Float = 0,
                rotationDegrees: Float = 0, brightness: Float = 0, contrast: Float = 1,
                boxJitter: BoxJitter = .none, occlusion: Occlusion? = nil, blurSigma: Float = 0, gamma: Float = 1) {
        self.flip = flip; self.shearX = shearX; self.shiftX = shiftX; self.shiftY = shiftY; self.zoomOut = zoomOut
        self.rotationDegrees = rotationDegrees; self.brightness = brightness; self.contrast = contrast
        self.boxJitter = boxJitter; self.occlusion = occlusion; self.blurSigma = blurSigma; self.gamma = gamma
    }

    public static let identity = Augmentation()

    public static func draw(_ p: AugmentationParameters, rng: inout SplitMix64) -> Augmentation {
        var a = Augmentation(flip: rng.unit() < p.flipProbability, shearX: rng.symmetric(p.maxShearX),
                             shiftX: rng.symmetric(p.maxShift), shiftY: rng.symmetric(p.maxShift),
                             zoomOut: rng.unit() * (p.maxZoomOut + p.maxZoomIn) - p.maxZoomIn, rotationDegrees: rng.symmetric(p.maxRotationDegrees),
                             brightness: rng.symmetric(p.maxBrightness), contrast: 1 + rng.symmetric(p.maxContrast))
        // After the seed's draws, and only for what is switched on.
        a.drawRecipe(p, rng: &rng)
        return a
    }

    /// The geometry in pixels of a width×height crop: flip, zoom, shear and rotate about the centre,
    /// then shift.
    public func transform(width: Int, height: Int) -> Affine2D {
        let cx = Float(width - 1) / 2, cy = Float(height - 1) / 2
        let scale = 1 - zoomOut
        return Affine2D.translation(-cx, -cy)
            .followed(by: .scale(flip ? -scale : scale, scale))
            .followed(by: .shearX(shearX))
            .followed(by: .rotation(radians: rotationDegrees * .pi / 180))
            .followed(by: .translation(cx + shiftX * Float(width), cy + shiftY * Float(height)))
    }

    /// Brightness and contrast on one grey value in [0, 1] (clamped).
    @inlinable public func photometric(_ v: Float) -> Float {
        min(max((v - 0.5) * contrast + 0.5 + brightness, 0), 1)
    }
}

/// Keypoints as a flip relabels them: the point that was `i` becomes `permutation[i]`.
public func relabelForFlip(_ points: [Float], permutation: [Int]) -> [Float] {
    var out = points
    for i in 0..<permutation.count {
        out[2 * permutation[i]] = points[2 * i]
        out[2 * permutation[i] + 1] = points[2 * i + 1]
    }
    return out
}

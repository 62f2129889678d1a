/// One face → one training sample: crop transform (box enlarged, aspect kept), optional augmentation
/// composed into the same 2×3 matrix, a single bilinear warp into the batch buffer, photometric
/// jitter and normalisation, keypoints through the same matrix (relabelled on flips), heatmaps.
import Foundation

/// The map from grey values in [0, 1] to model input, (v - mean) / std, and back. `standard` is the
/// one place its constants are written: the loader applies it, checkpoints store it, and pictures,
/// evaluation and predict invert or apply the stored one.
public struct PixelNormalisation: Codable, Equatable, Sendable {
    public var mean: Float
    public var std: Float

    /// [0, 1] → [-1, 1].
    public static let standard = PixelNormalisation(mean: 0.5, std: 0.5)

    public init(mean: Float, std: Float) { self.mean = mean; self.std = std }

    @inline(__always) public func normalise(_ grey: Float) -> Float { (grey - mean) / std }
    @inline(__always) public func denormalise(_ value: Float) -> Float { value * std + mean }
}

/// Everything that shapes a sample and a batch.
public struct LoaderOptions: Sendable {
    /// Output crop size in pixels.
    public var width = 224
    public var height = 224
    public var batchSize = 32
    /// Markup indices to output, in this order (e.g. [52] for IMM's nose tip); nil: all points.
    public var keypointSubset: [Int]? = nil
    public var augment = false
    public var augmentation = AugmentationParameters()
    /// Heatmap planes per keypoint (nil: none), and their σ in heatmap pixels (nil: 5 px per 224).
    public var heatmapSize: (width: Int, height: Int)? = nil
    public var heatmapSigma: Float? = nil
    /// The face box grows by this fraction before cropping (0.2 = 20 %); faces without a box use
    /// the whole image.
    public var enlargement: Float = 0.2
    /// Grey value for pixels from outside the image.
    public var fill: Float = 0
    /// Grey values → model input.
    public var normalisation = PixelNormalisation.standard
    /// Fail on the first bad sample instead of skipping it with a warning.
    public var strict = false
    /// Seeds shuffling and augmentation.
    public var seed: UInt64 = 1
    /// Batches prepared ahead of the one in use, and background threads preparing them.
    public var prefetch = 2
    public var workers = 1
    /// The workers' nice value (0: the caller's priority; 19: only cycles nothing else wants).
    public var workerNice: Int32 = 0

    public init() {}
}

/// What is needed to map a sample's predictions back to its source image.
public struct SampleInfo: Sendable {
    /// Index in the dataset the loader reads.
    public var index: Int
    public var source: String
    /// Source-image pixels → crop pixels (crop and augmentation together).
    public var transform: Affine2D
    /// Whether the sample was mirrored (its keypoint labels are swapped left/right).
    public var flipped: Bool

    public init(index: Int, source: String, transform: Affine2D, flipped: Bool) {
        self.index = index; self.source = source; self.transform = transform; self.flipped = flipped
    }
}

/// A sample as plain values (for pictures and tests): grey crop in [0, 1] and keypoints in crop pixels.
public struct PreparedSample: Sendable {
    public var image: GreyImage
    public var keypoints: [Float]
    public var heatmaps: [Float]
    public var info: SampleInfo
}

public struct SamplePipeline: Sendable {
    public let markup: KeypointMarkup
    public let options: LoaderOptions
    /// Markup indices output, in order.
    public let labels: [Int]
    /// On a flipped sample, output position j holds the point that sits at `flippedPosition[j]`
    /// in the unflipped order.
    public let flippedPosition: [Int]
    public let heatmapWidth: Int, heatmapHeight: Int
    public let sigma: Float

    public init(markup: KeypointMarkup, options: LoaderOptions) throws {
        let labels = options.keypointSubset ?? Array(0..<markup.count)
        if let bad = labels.first(where: { $0 < 0 || $0 >= markup.count }) {
            throw DataError(file: markup.name, "keypoint \(bad) is not in the \(markup.count)-point markup")
        }
        var flipped: [Int] = []
        for label in labels {
            guard let position = labels.firstIndex(of: markup.flipPermutation[label]) else {
                if options.augment && options.augmentation.flipProbability > 0 {
                    throw DataError(file: markup.name, "keypoint subset \(labels) lacks \(markup.flipPermutation[label]), "
                                    + "the mirror of \(label): add it or set the flip probability to 0")
                }
                flipped.append(labels.firstIndex(of: label)!)
                continue
            }
            flipped.append(position)
        }
        guard options.width > 0, options.height > 0 else { throw DataError(file: "options", "crop size must be positive") }
        self.markup = markup
        self.options = options
        self.labels = labels
        self.flippedPosition = flipped
        heatmapWidth = options.heatmapSize?.width ?? 0
        heatmapHeight = options.heatmapSize?.height ?? 0
        sigma = options.heatmapSigma ?? Heatmaps.defaultSigma(heatmapWidth: heatmapWidth)
    }

    public var keypointCount: Int { labels.count }
    public var imageSize: Int { options.width * options.height }
    public var heatmapPlaneSize: Int { heatmapWidth * heatmapHeight }

    /// Source pixels → crop pixels without augmentation: the face box enlarged by
    /// `options.enlargement`, grown to the crop's aspect ratio around its centre (faces keep their
    /// shape: square crops take the longer side); no box: the whole image.
    public func cropTransform(for record: some SampleFace) -> Affine2D {
        cropTransform(box: record.box, imageWidth: record.imageWidth, imageHeight: record.imageHeight)
    }

    /// The crop transform from a face box moved / scaled by `boxJitter` (a detector's error): the
    /// face lands off-centre and at a different size, keypoints and pixels through the same matrix.
    /// Faces without a box (the whole image) are not jittered.
    public func cropTransform(for record: some SampleFace, boxJitter: BoxJitter) -> Affine2D {
        guard !boxJitter.isNone, let box = record.box else { return cropTransform(for: record) }
        return cropTransform(box: boxJitter.apply(to: box), imageWidth: record.imageWidth, imageHeight: record.imageHeight)
    }

    func cropTransform(box: Box?, imageWidth: Int, imageHeight: Int) -> Affine2D {
        let w = options.width, h = options.height
        guard let box else {
            return GreyImage.resizeTransform(fromWidth: imageWidth, fromHeight: imageHeight, toWidth: w, toHeight: h)
        }
        let grow = 1 + options.enlargement
        let pixelsPerOutput = max(box.width * grow / Float(w), box.height * grow / Float(h), 1e-3)
        let cx = box.x + box.width / 2, cy = box.y + box.height / 2
        let s = 1 / pixelsPerOutput
        return Affine2D(a: s, b: 0, c: Float(w - 1) / 2 - cx * s, d: 0, e: s, f: Float(h - 1) / 2 - cy * s)
    }

    /// Source pixels → crop pixels for one augmentation draw: the crop of the (jittered) box, then
    /// the draw's geometry about the crop centre. With `augmentation.reframe` the crop is then
    /// rebuilt around the augmented keypoints: the new box stands to their extent as the labelled
    /// box stands to the original keypoints' extent (mirrored with a flip), and box jitter acts on
    /// that box. On ytfaces68 and 300-W's large set the box *is* the keypoints' extent, so a rotated
    /// training face is framed exactly as a validation face is; without reframing, rotation, zoom and
    /// shift leave the face off the box that every evaluation crop is built from.
    public func sampleTransform(for record: some SampleFace, augmentation: Augmentation) -> Affine2D {
        let w = options.width, h = options.height
        guard augmentation.reframe, let box = record.box, let extent = Self.extent(record.keypoints) else {
            return cropTransform(for: record, boxJitter: augmentation.boxJitter)
                .followed(by: augmentation.transform(width: w, height: h))
        }
        let augmented = cropTransform(for: record).followed(by: augmentation.transform(width: w, height: h))
        var moved = record.keypoints
        for i in stride(from: 0, to: moved.count - 1, by: 2) {
            let p = augmented.apply(moved[i], moved[i + 1])
            moved[i] = p.x; moved[i + 1] = p.y
        }
        guard let e = Self.extent(moved) else { return augmented }
        let mirror: Float = augmentation.flip ? -1 : 1
        let offsetX = mirror * (box.x + box.width / 2 - (extent.x + extent.width / 2)) / extent.width
        let offsetY = (box.y + box.height / 2 - (extent.y + extent.height / 2)) / extent.height
        let bw = box.width / extent.width * e.width, bh = box.height / extent.height * e.height
        let cx = e.x + e.width / 2 + offsetX * e.width, cy = e.y + e.height / 2 + offsetY * e.height
        let reframed = augmentation.boxJitter.apply(to: Box(x: cx - bw / 2, y: cy - bh / 2, width: bw, height: bh))
        return augmented.followed(by: cropTransform(box: reframed, imageWidth: w, imageHeight: h))
    }

    /// The bounding box of the finite points among interleaved x, y; nil when there are none or
    /// they span less than a thousandth of a pixel in either direction.
    static func extent(_ points: [Float]) -> Box? {
        var x0 = Float.infinity, y0 = Float.infinity, x1 = -Float.infinity, y1 = -Float.infinity
        for i in stride(from: 0, to: points.count - 1, by: 2) where points[i].isFinite && points[i + 1].isFinite {
            x0 = min(x0, points[i]); x1 = max(x1, points[i])
            y0 = min(y0, points[i + 1]); y1 = max(y1, points[i + 1])
        }
        guard x1 - x0 > 1e-3, y1 - y0 > 1e-3 else { return nil }
        return Box(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// Draws augmentations until the output keypoints stay inside the crop (up to
    /// `attempts` tries); otherwise the identity (the unaugmented crop).
    public func drawAugmentation(for record: some SampleFace, rng: inout SplitMix64) -> Augmentation {
        let maxX = Float(options.width - 1), maxY = Float(options.height - 1)
        for _ in 0..<max(options.augmentation.attempts, 1) {
            let augmentation = Augmentation.draw(options.augmentation, rng: &rng)
            let m = sampleTransform(for: record, augmentation: augmentation)
            let inside = labels.allSatisfy { label in
                let p = m.apply(record.keypoints[2 * label], record.keypoints[2 * label + 1])
                return p.x >= 0 && p.y >= 0 && p.x <= maxX && p.y <= maxY
            }
            if inside { return augmentation }
        }
        return .identity
    }

    /// Writes one sample: `image` (width×height, grey normalised by `options.normalisation`), `keypoints` (2K,
    /// x / width, y / height), `heatmaps` (K planes `heatmapStride` floats apart, when configured; nil
    /// stride: adjacent planes).
    public func prepare(_ record: some SampleFace, index: Int, augmentation: Augmentation,
                        image: UnsafeMutablePointer<Float>, keypoints: UnsafeMutablePointer<Float>,
                        heatmaps: UnsafeMutablePointer<Float>?, heatmapStride: Int? = nil) -> SampleInfo {
        let w = options.width, h = options.height
        let m = sampleTransform(for: record, augmentation: augmentation)
        record.warpImage(by: m, into: image, width: w, height: h, fill: options.fill)
        // Occlusion, blur and gamma (RecipeAugmentation.swift); nothing at their defaults.
        if augmentation.hasPixelEffects { augmentation.applyPixelEffects(to: image, width: w, height: h) }
        let photometric = augmentation.brightness != 0 || augmentation.contrast != 1
        let normalisation = options.normalisation
        for i in 0..<(w * h) {
            let v = photometric ? augmentation.photometric(image[i]) : image[i]
            image[i] = normalisation.normalise(v)
        }
        let stride = heatmapStride ?? heatmapPlaneSize
        if let heatmaps {
            for j in 0..<keypointCount { (heatmaps + j * stride).initialize(repeating: 0, count: heatmapPlaneSize) }
        }
        for (j, label) in labels.enumerated() {
            // A mirrored image shows point i where its partner was: output label j comes from the
            // partner of `label`.
            let source = augmentation.flip ? markup.flipPermutation[label] : label
            let p = m.apply(record.keypoints[2 * source], record.keypoints[2 * source + 1])
            keypoints[2 * j] = p.x / Float(w)
            keypoints[2 * j + 1] = p.y / Float(h)
            if let heatmaps {
                let q = Heatmaps.cropToHeatmap(x: p.x, y: p.y, width: heatmapWidth, height: heatmapHeight,
                                               cropWidth: w, cropHeight: h)
                Heatmaps.render(x: q.x, y: q.y, sigma: sigma, into: heatmaps + j * stride,
                                width: heatmapWidth, height: heatmapHeight)
            }
        }
        return SampleInfo(index: index, source: record.source, transform: m, flipped: augmentation.flip)
    }

    /// `prepare` into fresh arrays, the image un-normalised back to [0, 1] and keypoints in crop pixels.
    public func sample(_ record: FaceRecord, index: Int = 0, augmentation: Augmentation = .identity) -> PreparedSample {
        var image = [Float](repeating: 0, count: imageSize)
        var points = [Float](repeating: 0, count: 2 * keypointCount)
        var planes = [Float](repeating: 0, count: keypointCount * heatmapPlaneSize)
        let info = image.withUnsafeMutableBufferPointer { img in
            points.withUnsafeMutableBufferPointer { kp in
                planes.withUnsafeMutableBufferPointer { hm in
                    prepare(record, index: index, augmentation: augmentation, image: img.baseAddress!,
                            keypoints: kp.baseAddress!, heatmaps: heatmapPlaneSize > 0 ? hm.baseAddress! : nil)
                }
            }
        }
        for i in 0..<image.count { image[i] = options.normalisation.denormalise(image[i]) }
        for j in 0..<keypointCount { points[2 * j] *= Float(options.width); points[2 * j + 1] *= Float(options.height) }
        return PreparedSample(image: GreyImage(width: options.width, height: options.height, pixels: image),
                              keypoints: points, heatmaps: planes, info: info)
    }

    /// Sample `i` of a batch this pipeline prepared, back as grey values in [0, 1] (pictures).
    public func crop(_ batch: Batch, _ i: Int) -> GreyImage {
        let plane = batch.width * batch.height
        return GreyImage(width: batch.width, height: batch.height,
                         pixels: batch.images[(i * plane) ..< ((i + 1) * plane)].map(options.normalisation.denormalise))
    }

    /// Normalised keypoints of one sample (as in `Batch.keypoints`, or a model's predictions) →
    /// pixels of the source image, in unflipped label order: the inverse of `prepare`.
    public func sourceKeypoints(normalised: UnsafePointer<Float>, info: SampleInfo) -> [Float] {
        let inverse = info.transform.inverted()
        var out = [Float](repeating: 0, count: 2 * keypointCount)
        for j in 0..<keypointCount {
            let p = inverse.apply(normalised[2 * j] * Float(options.width), normalised[2 * j + 1] * Float(options.height))
            let target = info.flipped ? flippedPosition[j] : j
            out[2 * target] = p.x
            out[2 * target + 1] = p.y
        }
        return out
    }

    public func sourceKeypoints(normalised: [Float], info: SampleInfo) -> [Float] {
        normalised.withUnsafeBufferPointer { sourceKeypoints(normalised: $0.baseAddress!, info: info) }
    }
}

/// The built-in synthetic face dataset: procedurally drawn grey faces with exact iBUG 68-point labels.
///
/// It is the project's default data (no download). Each face varies in pose (roll, yaw, pitch),
/// scale and position, face shape, expression, lighting, skin and hair tone, background clutter, blur
/// and noise. Face `i` of seed `s` is the same picture on every machine and run (own PRNG, no libm).

/// `count` faces of `imageSize` x `imageSize` pixels; `record(at:)` also works past `count`
/// (any index >= 0), so the dataset doubles as an unlimited stream of fresh faces.
public struct SyntheticFaces: FaceDataset {
    public let count: Int
    public let seed: UInt64
    public let imageSize: Int

    public init(count: Int, seed: UInt64, imageSize: Int = 256) {
        precondition(count >= 0, "SyntheticFaces: negative count \(count)")
        precondition(imageSize >= 16, "SyntheticFaces: image size \(imageSize) is below 16 pixels")
        self.count = count
        self.seed = seed
        self.imageSize = imageSize
    }

    public var name: String { "synthetic (\(count) faces, seed \(seed), \(imageSize)x\(imageSize))" }

    public var markup: KeypointMarkup { Self.syntheticMarkup }

    /// The iBUG 68-point markup, the same as the 300-W loaders'.
    public static var syntheticMarkup: KeypointMarkup { .ibug68 }

    public func record(at index: Int) throws -> FaceRecord {
        guard index >= 0 else {
            throw DataError(file: "synthetic(seed \(seed))", "face index \(index) is negative")
        }
        // Independent streams for geometry, appearance and scene: tuning the background never moves
        // a keypoint, and the labels of face i do not depend on the image size's rendering details.
        var shape = SplitMix64(seed: seed, index: UInt64(index), stream: 1)
        var look = SplitMix64(seed: seed, index: UInt64(index), stream: 2)
        var scene = SplitMix64(seed: seed, index: UInt64(index), stream: 3)
        let geometry = SynthFaceModel.generate(&shape, size: imageSize)
        let image = SynthFaceRenderer.render(geometry, size: imageSize, look: &look, scene: &scene)

        var keypoints = [Float](repeating: 0, count: 136)
        var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
        for (i, p) in geometry.keypoints.enumerated() {
            keypoints[2 * i] = p.x
            keypoints[2 * i + 1] = p.y
            minX = min(minX, p.x); maxX = max(maxX, p.x); minY = min(minY, p.y); maxY = max(maxY, p.y)
        }
        // Tight keypoint-extent box, as in the iBUG 300-W annotations.
        let box = Box(x: minX, y: minY, width: maxX - minX, height: maxY - minY)
        return FaceRecord(image: image, keypoints: keypoints, box: box, source: "synthetic(seed \(seed))#\(index)")
    }
}

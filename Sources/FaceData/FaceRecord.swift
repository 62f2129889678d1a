/// The shared vocabulary of the data path: a grey image, a face with its keypoints, and a dataset.

/// A grey image, row-major, one Float per pixel in [0, 1] (0 = black).
public struct GreyImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height, "GreyImage: \(pixels.count) pixels for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: Float = 0) {
        self.init(width: width, height: height, pixels: [Float](repeating: fill, count: width * height))
    }
}

/// An axis-aligned box in image pixels (x, y = top-left corner).
public struct Box: Sendable, Equatable {
    public var x: Float, y: Float, width: Float, height: Float
    public init(x: Float, y: Float, width: Float, height: Float) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
}

/// One face as stored: the whole image, its keypoints in that image's pixels, and the face box
/// (nil: the whole image is the face crop, as for IMM).
public struct FaceRecord: Sendable {
    public var image: GreyImage
    /// Interleaved x0, y0, x1, y1, ... in pixels of `image`.
    public var keypoints: [Float]
    public var box: Box?
    /// Where the face came from (file path, or "synthetic#N"), for error messages and reports.
    public var source: String

    public init(image: GreyImage, keypoints: [Float], box: Box?, source: String) {
        self.image = image; self.keypoints = keypoints; self.box = box; self.source = source
    }

    public var keypointCount: Int { keypoints.count / 2 }
}

/// What the sample pipeline reads from a face: its labels, its image's size, and one warp of its
/// pixels into a crop. A `FaceRecord` warps its Float pixels; a `CachedFace` the loader cache's
/// bytes, without turning the whole image into Floats first.
public protocol SampleFace: Sendable {
    /// Interleaved x0, y0, x1, y1, ... in pixels of the image.
    var keypoints: [Float] { get }
    var box: Box? { get }
    var source: String { get }
    var imageWidth: Int { get }
    var imageHeight: Int { get }
    /// `GreyImage.warp`: `transform` maps image pixels to the `width`×`height` crop at `dst`.
    func warpImage(by transform: Affine2D, into dst: UnsafeMutablePointer<Float>, width: Int, height: Int, fill: Float)
}

extension FaceRecord: SampleFace {
    public var imageWidth: Int { image.width }
    public var imageHeight: Int { image.height }
    public func warpImage(by transform: Affine2D, into dst: UnsafeMutablePointer<Float>, width: Int, height: Int, fill: Float) {
        image.warp(by: transform, into: dst, width: width, height: height, fill: fill)
    }
}

/// A keypoint markup: how many points, and which point a horizontal flip turns each point into
/// (left eye corner <-> right eye corner, ...). `flipPermutation[i]` is the new index of point i.
public struct KeypointMarkup: Sendable, Equatable {
    public var name: String
    public var count: Int
    public var flipPermutation: [Int]
    /// Points whose distance normalises errors (NME): e.g. the outer eye corners 36 and 45 for iBUG 68.
    public var normalisingPair: (Int, Int)?

    public init(name: String, count: Int, flipPermutation: [Int], normalisingPair: (Int, Int)?) {
        precondition(flipPermutation.count == count)
        self.name = name; self.count = count; self.flipPermutation = flipPermutation
        self.normalisingPair = normalisingPair
    }

    public static func == (a: KeypointMarkup, b: KeypointMarkup) -> Bool {
        a.name == b.name && a.count == b.count && a.flipPermutation == b.flipPermutation
            && a.normalisingPair?.0 == b.normalisingPair?.0 && a.normalisingPair?.1 == b.normalisingPair?.1
    }
}

/// A random-access collection of faces. Loading one record decodes its image; implementations
/// must be safe to call from several threads at once (the batch loader does).
public protocol FaceDataset: Sendable {
    /// Short description for logs, e.g. "IMM (240 faces)".
    var name: String { get }
    var count: Int { get }
    var markup: KeypointMarkup { get }
    /// Loads record `index`; throws a `DataError` naming the file (and line) on bad input.
    func record(at index: Int) throws -> FaceRecord
    /// Record `index` as the loader reads it: `record(at:)`, or what a cache keeps of it.
    func face(at index: Int) throws -> any SampleFace
}

extension FaceDataset {
    public func face(at index: Int) throws -> any SampleFace { try record(at: index) }
}

/// Data errors carry the file (and line, when known) they come from; `description` is one line.
public struct DataError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, _ message: String) {
        self.file = file; self.line = line; self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

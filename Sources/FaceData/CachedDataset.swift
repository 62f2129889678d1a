import Foundation

/// Keeps decoded faces in memory (8 bits per pixel) so epochs after the first skip JPEG decoding
/// or face rendering, the loader's main cost. Records beyond `budgetBytes` are not cached and are
/// decoded each time, so memory stays bounded whatever the dataset size.
public final class CachedDataset: FaceDataset, @unchecked Sendable {
    public let base: any FaceDataset
    public let budgetBytes: Int
    private struct Entry {
        var width: Int, height: Int
        var pixels: [UInt8]
        var keypoints: [Float]
        var box: Box?
        var source: String
    }
    private var entries: [Entry?]
    private var usedBytes = 0
    private let lock = NSLock()

    public init(_ base: any FaceDataset, budgetBytes: Int) {
        self.base = base
        self.budgetBytes = budgetBytes
        entries = [Entry?](repeating: nil, count: base.count)
    }

    public var name: String { base.name }
    public var count: Int { base.count }
    public var markup: KeypointMarkup { base.markup }
    public var cachedBytes: Int { lock.withLock { usedBytes } }

    /// The memory the cache holds with `images` faces of `pixels` pixels cached out of `records`
    /// (a memory plan's figure): the table of every record, and per cached face its pixels (one
    /// byte each, what the budget counts), its keypoints, source name and array headers.
    public static func plannedBytes(records: Int, images: Int, pixels: Int, keypoints: Int) -> Int {
        let arrayOverhead = 48   // Swift's array header and malloc's chunk header
        let perImage = pixels + 2 * keypoints * MemoryLayout<Float>.stride + 3 * arrayOverhead + 64   // + a source path
        return records * MemoryLayout<Entry?>.stride + images * perImage
    }

    /// How many faces of `pixels` pixels the budget admits (`record(at:)` stops caching there).
    public static func images(fitting budgetBytes: Int, pixels: Int) -> Int { budgetBytes / max(pixels, 1) }

    /// The cached bytes as they are (the loader warps from them), or the record, cached now.
    public func face(at index: Int) throws -> any SampleFace {
        if let e = lock.withLock({ entries[index] }) {
            return CachedFace(width: e.width, height: e.height, bytes: e.pixels, keypoints: e.keypoints, box: e.box, source: e.source)
        }
        return try record(at: index)
    }

    public func record(at index: Int) throws -> FaceRecord {
        if let e = lock.withLock({ entries[index] }) {
            return FaceRecord(image: GreyImage(width: e.width, height: e.height, pixels: Self.expand(e.pixels)),
                              keypoints: e.keypoints, box: e.box, source: e.source)
        }
        var record = try base.record(at: index)
        let quantised = Self.quantise(record.image.pixels)
        record.image.pixels = Self.expand(quantised)
        lock.withLock {
            if entries[index] == nil, usedBytes + quantised.count <= budgetBytes {
                entries[index] = Entry(width: record.image.width, height: record.image.height, pixels: quantised,
                                       keypoints: record.keypoints, box: record.box, source: record.source)
                usedBytes += quantised.count
            }
        }
        return record
    }
}

extension CachedDataset {
    // 8-bit quantisation: the sources are 8-bit images, so this loses nothing real. Every face the
    // cache takes in, and every cached face asked for as a record, passes through these, so they
    // are plain loops over raw buffers, which the compiler vectorises (`Array.map` with a closure
    // ran at 1.3 ns a pixel). The loader itself warps from the bytes (`CachedFace`).

    /// [0, 1] grey values → bytes (rounded, clamped).
    static func quantise(_ pixels: [Float]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: pixels.count) { out, initialised in
            pixels.withUnsafeBufferPointer { src in
                for i in 0..<src.count { out[i] = UInt8((min(max(src[i], 0), 1) * 255).rounded()) }
            }
            initialised = pixels.count
        }
    }

    /// Bytes → grey values v / 255.
    static func expand(_ bytes: [UInt8]) -> [Float] {
        [Float](unsafeUninitializedCapacity: bytes.count) { out, initialised in
            bytes.withUnsafeBufferPointer { src in
                for i in 0..<src.count { out[i] = Float(src[i]) * (1 / 255) }
            }
            initialised = bytes.count
        }
    }
}

/// A face as the cache keeps it: 8-bit grey values (v = byte / 255).
public struct CachedFace: SampleFace {
    public var width: Int, height: Int
    public var bytes: [UInt8]
    public var keypoints: [Float]
    public var box: Box?
    public var source: String

    public init(width: Int, height: Int, bytes: [UInt8], keypoints: [Float], box: Box?, source: String) {
        precondition(bytes.count == width * height, "CachedFace: \(bytes.count) bytes for \(width)x\(height)")
        self.width = width; self.height = height; self.bytes = bytes
        self.keypoints = keypoints; self.box = box; self.source = source
    }

    public var imageWidth: Int { width }
    public var imageHeight: Int { height }

    /// The same crop, bit for bit, as the record's Float pixels give: each sampled byte becomes the
    /// same Float before the same arithmetic (fkp_warp_bilinear). Shrinking (scales below ½) works on Floats.
    public func warpImage(by transform: Affine2D, into dst: UnsafeMutablePointer<Float>, width outWidth: Int,
                          height outHeight: Int, fill: Float) {
        if GreyImage.shrinkFactor(transform) >= 2 {
            GreyImage(width: width, height: height, pixels: CachedDataset.expand(bytes))
                .warp(by: transform, into: dst, width: outWidth, height: outHeight, fill: fill)
            return
        }
        bytes.withUnsafeBufferPointer { src in
            GreyImage.warpBilinear(src.baseAddress!, bytes: true, width: width, height: height, by: transform,
                                   into: dst, width: outWidth, height: outHeight, fill: fill, clampToEdge: false)
        }
    }
}

extension CachedDataset: PersonLabelled {
    public func person(at index: Int) -> String { personOf(base, index) }
}

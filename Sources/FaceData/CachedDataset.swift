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

    public func record(at index: Int) throws -> FaceRecord {
        if let e = lock.withLock({ entries[index] }) {
            // 8-bit quantisation: the sources are 8-bit images, so this loses nothing real.
            let pixels = e.pixels.map { Float($0) * (1 / 255) }
            return FaceRecord(image: GreyImage(width: e.width, height: e.height, pixels: pixels),
                              keypoints: e.keypoints, box: e.box, source: e.source)
        }
        var record = try base.record(at: index)
        let quantised = record.image.pixels.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
        record.image.pixels = quantised.map { Float($0) * (1 / 255) }
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

extension CachedDataset: PersonLabelled {
    public func person(at index: Int) -> String { personOf(base, index) }
}

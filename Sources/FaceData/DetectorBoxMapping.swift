/// A detector's box is not a dataset's box: dlib's HOG box runs from the brows to the chin, a 300-W
/// box is a detector box of another detector, ytfaces68's box is the landmarks' extent, and IMM has
/// no box at all (the whole photo is the crop). A model is trained on one convention and is sensitive
/// to it, so detector boxes are mapped into the training convention before cropping.
import Foundation

/// Detector box → training box, in units of the detector box (so one mapping fits every face size):
/// centre moves by (offsetX·width, offsetY·height), size scales by (scaleWidth, scaleHeight).
public struct DetectorBoxMapping: Codable, Equatable, Sendable {
    public var offsetX: Float = 0
    public var offsetY: Float = 0
    public var scaleWidth: Float = 1
    public var scaleHeight: Float = 1
    /// How it was fitted (for reports): faces used, detector upsampling, and the RMS residuals of the
    /// centre and size, in detector-box units.
    public var faces = 0
    public var upsample = 1
    public var rmsCentre: Float = 0
    public var rmsSize: Float = 0

    public init() {}

    /// No mapping: the detector box is used as it is.
    public static let identity = DetectorBoxMapping()

    public func apply(_ d: Box) -> Box {
        let w = d.width * scaleWidth, h = d.height * scaleHeight
        let cx = d.centreX + offsetX * d.width, cy = d.centreY + offsetY * d.height
        return Box(x: cx - w / 2, y: cy - h / 2, width: w, height: h)
    }

    /// Least squares in detector-box units: each parameter is the mean of its per-face value, e.g.
    /// scaleWidth = mean(target.width / detected.width). Then both scales are corrected so the crop
    /// comes out as large as in training on average: the crop is cut from the box's larger side
    /// relative to the input (max(w / cropWidth, h / cropHeight)), and the mean of a per-face max is
    /// larger than the max of the means (on ytfaces68 by 2 %, worth NME 0.0951 -> 0.0923).
    /// Needs at least one pair.
    public static func fit(detected: [Box], target: [Box], upsample: Int, cropWidth: Int = 1, cropHeight: Int = 1) -> DetectorBoxMapping {
        precondition(detected.count == target.count && !detected.isEmpty, "fit: need matching, non-empty box lists")
        let n = Float(detected.count)
        func mean(_ f: (Box, Box) -> Float) -> Float { zip(detected, target).reduce(0) { $0 + f($1.0, $1.1) } / n }
        var m = DetectorBoxMapping()
        m.offsetX = mean { d, t in (t.centreX - d.centreX) / d.width }
        m.offsetY = mean { d, t in (t.centreY - d.centreY) / d.height }
        m.scaleWidth = mean { d, t in t.width / d.width }
        m.scaleHeight = mean { d, t in t.height / d.height }
        func cropSide(_ b: Box) -> Float { max(b.width / Float(cropWidth), b.height / Float(cropHeight)) }
        let crop = mean { d, t in cropSide(t) / cropSide(m.apply(d)) }
        m.scaleWidth *= crop
        m.scaleHeight *= crop
        m.faces = detected.count
        m.upsample = upsample
        let mapped = detected.map(m.apply)
        m.rmsCentre = sqrt(zip(mapped, zip(detected, target)).reduce(0) { sum, p in
            let (a, (d, t)) = p
            let dx = (a.centreX - t.centreX) / d.width, dy = (a.centreY - t.centreY) / d.height
            return sum + (dx * dx + dy * dy) / 2
        } / n)
        m.rmsSize = sqrt(zip(mapped, zip(detected, target)).reduce(0) { sum, p in
            let (a, (d, t)) = p
            let dw = (a.width - t.width) / d.width, dh = (a.height - t.height) / d.height
            return sum + (dw * dw + dh * dh) / 2
        } / n)
        return m
    }

    /// The detection that belongs to a face whose box (in the dataset's convention) is `box`: of the
    /// detections whose centre lies inside it, the one overlapping it most; nil when none does.
    public static func match(_ faces: [DetectedFace], to box: Box) -> DetectedFace? {
        faces.filter { f in
            f.box.centreX >= box.x && f.box.centreX <= box.x + box.width
                && f.box.centreY >= box.y && f.box.centreY <= box.y + box.height
        }.max { $0.box.overlap(box) < $1.box.overlap(box) }
    }

    /// The box a record is cropped by in training: its own, or the whole image when it has none.
    public static func trainingBox(of record: FaceRecord) -> Box {
        record.box ?? Box(x: 0, y: 0, width: Float(record.image.width), height: Float(record.image.height))
    }
}

/// Runs the detector over faces `indices` of `dataset` and fits the mapping from its boxes to the
/// dataset's. Returns the mapping, how many faces the detector missed (no matching detection), and
/// how many could not be read (skipped, as the loader skips them).
/// `cropWidth` × `cropHeight`: the model's input size (its aspect decides which side the crop follows).
public func calibrateDetector(dataset: any FaceDataset, indices: [Int], upsample: Int, cropWidth: Int = 1, cropHeight: Int = 1) throws
    -> (mapping: DetectorBoxMapping, missed: Int, skipped: Int) {
    // Independent faces: detect on all cores (the detector is per thread); one slot per face keeps
    // the fit independent of thread timing.
    var pairs = [(Box, Box)?](repeating: nil, count: indices.count)
    var skipped = [Bool](repeating: false, count: indices.count)
    pairs.withUnsafeMutableBufferPointer { pairs in
        skipped.withUnsafeMutableBufferPointer { skipped in
            DispatchQueue.concurrentPerform(iterations: indices.count) { i in
                guard let record = try? dataset.record(at: indices[i]),
                      let faces = try? FaceDetector.detect(record.image, upsample: upsample, source: record.source) else {
                    skipped[i] = true
                    return
                }
                let box = DetectorBoxMapping.trainingBox(of: record)
                if let match = DetectorBoxMapping.match(faces, to: box) { pairs[i] = (match.box, box) }
            }
        }
    }
    let found = pairs.compactMap { $0 }
    let skips = skipped.filter { $0 }.count
    guard !found.isEmpty else {
        throw DataError(file: dataset.name, "the face detector found none of the \(indices.count) faces (upsample \(upsample)): nothing to calibrate")
    }
    return (DetectorBoxMapping.fit(detected: found.map(\.0), target: found.map(\.1), upsample: upsample,
                                   cropWidth: cropWidth, cropHeight: cropHeight),
            indices.count - found.count - skips, skips)
}

/// `dataset` with every face's box replaced by the detector's box mapped into the training
/// convention (eval's `--boxes detector`). A face the detector misses keeps its own box and is
/// counted in `misses`.
public struct DetectorBoxDataset: FaceDataset {
    public let base: any FaceDataset
    public let mapping: DetectorBoxMapping
    public let upsample: Int
    public let misses: MissCounter

    public init(_ base: any FaceDataset, mapping: DetectorBoxMapping, upsample: Int) {
        self.base = base; self.mapping = mapping; self.upsample = upsample
        misses = MissCounter()
    }

    public var name: String { "\(base.name), detector boxes" }
    public var count: Int { base.count }
    public var markup: KeypointMarkup { base.markup }

    public func record(at index: Int) throws -> FaceRecord {
        var record = try base.record(at: index)
        let faces = try FaceDetector.detect(record.image, upsample: upsample, source: record.source)
        if let match = DetectorBoxMapping.match(faces, to: DetectorBoxMapping.trainingBox(of: record)) {
            record.box = mapping.apply(match.box)
        } else {
            misses.add(record.source)
        }
        return record
    }
}

/// Faces the detector missed, counted across loader threads.
public final class MissCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var sources = Set<String>()
    public init() {}
    func add(_ source: String) { lock.lock(); sources.insert(source); lock.unlock() }
    public var count: Int { lock.lock(); defer { lock.unlock() }; return sources.count }
}

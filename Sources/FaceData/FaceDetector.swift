/// Face detection: dlib's frontal face detector (HOG + linear SVM, compiled into dlib, no model
/// file) through the C API of CDlibDetector, on this module's grey images.
import CDlibDetector

/// A detected face: its box in image pixels and the detector's score (larger = more face-like).
public struct DetectedFace: Sendable, Equatable {
    public var box: Box
    public var score: Double
    public init(box: Box, score: Double) { self.box = box; self.score = score }
}

public enum FaceDetector {
    /// Faces in `image`, best score first. `upsample` doubles the image that many times first: dlib's
    /// window is 80×80 pixels, so upsample 1 finds faces down to about 40 pixels (at 4× the cost).
    /// `source` names the image in errors.
    public static func detect(_ image: GreyImage, upsample: Int = 1, source: String) throws -> [DetectedFace] {
        guard (0...4).contains(upsample) else {
            throw DataError(file: source, "upsample \(upsample) is out of range (0 to 4)")
        }
        let bytes = image.pixels.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
        var capacity = 16
        var error = [CChar](repeating: 0, count: 256)
        while true {
            var boxes = [fkp_face_box](repeating: fkp_face_box(), count: capacity)
            let found = bytes.withUnsafeBufferPointer { pixels in
                fkp_detect_faces(pixels.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width),
                                 Int32(upsample), &boxes, Int32(capacity), &error, error.count)
            }
            if found < 0 {
                throw DataError(file: source, "face detector failed: \(String(cString: error))")
            }
            // Crowds: ask again with room for all of them (rare; detection is repeated, not resumed).
            if Int(found) > capacity { capacity = Int(found); continue }
            return boxes[..<Int(found)].map {
                DetectedFace(box: Box(x: $0.left, y: $0.top, width: $0.width, height: $0.height), score: $0.score)
            }
        }
    }
}

extension Box {
    public var centreX: Float { x + width / 2 }
    public var centreY: Float { y + height / 2 }
    public var area: Float { max(width, 0) * max(height, 0) }

    /// Intersection over union with `other` (0 when they do not overlap).
    public func overlap(_ other: Box) -> Float {
        let w = min(x + width, other.x + other.width) - max(x, other.x)
        let h = min(y + height, other.y + other.height) - max(y, other.y)
        guard w > 0, h > 0 else { return 0 }
        let intersection = w * h
        return intersection / (area + other.area - intersection)
    }
}

import FaceData
import Foundation

/// What an application needs to feed an exported model (ONNX metadata_props): how a face becomes
/// the input crop, and what the outputs mean. JSON values are the checkpoint's own metadata.
public enum ExportMetadata {
    public static func entries(_ model: TrainedModel, checkpoint: String) throws -> [(key: String, value: String)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let p = model.preprocessing
        var entries: [(key: String, value: String)] = [
            ("fkp.checkpoint", URL(fileURLWithPath: checkpoint).lastPathComponent),
            ("fkp.model", try json(model.network.config)),
            ("fkp.preprocessing", try json(p)),
            ("fkp.input", "input [batch, 1, \(p.inputHeight), \(p.inputWidth)]: grey crop, luma v in [0, 1] normalised as "
                + "(v - \(p.mean)) / \(p.std)"),
            ("fkp.crop", "face box (x, y, w, h) in image pixels, centre (cx, cy) = (x + w/2, y + h/2); "
                + "s = 1 / max(w * \(1 + p.cropEnlargement) / \(p.inputWidth), h * \(1 + p.cropEnlargement) / \(p.inputHeight)); "
                + "crop pixel (u, v) = image point (cx + (u - \(Float(p.inputWidth - 1) / 2)) / s, cy + (v - \(Float(p.inputHeight - 1) / 2)) / s), "
                + "bilinear, 0 outside the image; when k = floor(1 / s) >= 2 the image is first averaged in k x k blocks "
                + "(block (i, j) at image point (k i + (k - 1) / 2, k j + (k - 1) / 2)); no box: the whole image resized to the input"),
            ("fkp.keypoints", "keypoints [batch, \(p.keypointCount), 2]: (x, y) in crop pixels; image point = "
                + "(cx + (x - \(Float(p.inputWidth - 1) / 2)) / s, cy + (y - \(Float(p.inputHeight - 1) / 2)) / s); markup \(p.markup)"
                + (p.keypoints.map { ", indices \($0.map(String.init).joined(separator: ","))" } ?? "")),
        ]
        if let mapping = model.detectorBoxMapping {
            entries.append(("fkp.detector_box_mapping", try json(mapping)))
            entries.append(("fkp.detector", "dlib frontal face detector (upsample \(mapping.upsample)); its box (x, y, w, h) maps to the "
                + "training box: centre + (offsetX * w, offsetY * h), size * (scaleWidth, scaleHeight)"))
        }
        return entries
    }
}

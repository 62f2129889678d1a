import ArgumentParser
import Checkpoints
import Engine
import FaceData
import Foundation
import SwiftMPI
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find the faces in images and their keypoints: JSON on stdout (original image pixels), and per image "
            + "a JSON file and an overlay PNG (boxes and points) in --out.",
        discussion: """
            Faces are found by dlib's frontal face detector; each detector box is mapped into the box convention \
            the model was trained with (`fkp calibrate-detector` stores the mapping in the checkpoint) and cropped \
            the way the checkpoint's preprocessing says. --box skips detection; --no-detect treats the whole image \
            as the face crop.
            """)

    @Argument(help: "JPEG or PNG images.") var images: [String]
    @OptionGroup var trained: CheckpointOptions
    @Option(help: "Face box x,y,w,h in image pixels, in the training data's box convention (no detection).") var box: String?
    @Flag(help: "No detection: the whole image is the face crop (for images that are face crops already).") var noDetect = false
    @Option(help: "Detector upsampling: each step doubles the image, finding faces half as large (0 to 4; 1 finds faces of about 40 px).")
    var upsample = 1
    @Flag(help: "An image without a face is not an error (its JSON lists no faces).") var allowEmpty = false
    @Option(help: "Folder for the overlay PNGs and JSON files (never the images' folder unless given here).") var out = "runs/predict"
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var imageLimit: ImageLimitOptions

    func parsedBox() throws -> Box? {
        guard let box else { return nil }
        let v = box.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, v[2] > 0, v[3] > 0 else { throw ValidationError("--box must be x,y,w,h with positive w and h, got '\(box)'") }
        return Box(x: v[0], y: v[1], width: v[2], height: v[3])
    }

    func validate() throws {
        guard (0...4).contains(upsample) else { throw ValidationError("--upsample must be 0 to 4, got \(upsample)") }
        guard !(noDetect && box != nil) else { throw ValidationError("--box and --no-detect exclude each other") }
    }

    /// One face to predict: the detector's box and score (nil for --box / --no-detect) and the box
    /// the crop is made from (training convention; nil = the whole image).
    struct Face {
        var detected: DetectedFace?
        var cropBox: Box?
    }

    func run() throws {
        runReportingErrors {
            Parallel.setThreads(threads.resolved.threads)
            let userBox = try parsedBox()
            let model = try TrainedModel(checkpoint: try CheckpointFile.resolveExisting(trained.checkpoint, communicator: MPI.world).relativePath, communicator: MPI.world)
            let detecting = userBox == nil && !noDetect
            let mapping = model.detectorBoxMapping ?? .identity
            if detecting && model.detectorBoxMapping == nil {
                warn("\(trained.checkpoint): no detector box mapping (run `fkp calibrate-detector`); detector boxes are used as they are, "
                     + "which may not match the boxes the model was trained on")
            }
            let folder = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            var names = Set<String>()
            var results: [[String: Any]] = []
            for path in images {
                let image = try ImageCodec.readGrey(path: path, maxPixels: imageLimit.maxPixels)
                let faces: [Face]
                if detecting {
                    faces = try FaceDetector.detect(image, upsample: upsample, source: path).map { Face(detected: $0, cropBox: mapping.apply($0.box)) }
                    if faces.isEmpty && !allowEmpty {
                        throw DataError(file: path, "no face found by the detector (upsample \(upsample)); try --upsample \(upsample + 1), "
                                        + "give --box x,y,w,h or --no-detect, or pass --allow-empty to accept images without faces")
                    }
                } else {
                    faces = [Face(detected: nil, cropBox: userBox)]
                }
                var entries: [[String: Any]] = []
                var drawn: [(face: Face, points: [Float])] = []
                for face in faces {
                    let points = try model.predict(image: image, box: face.cropBox, source: path)
                    drawn.append((face, points))
                    var entry: [String: Any] = [
                        "keypoints": stride(from: 0, to: points.count, by: 2).map { [Double(points[$0]), Double(points[$0 + 1])] },
                    ]
                    if let detected = face.detected {
                        entry["box"] = boxJSON(detected.box)
                        entry["score"] = detected.score
                    }
                    entry["crop_box"] = face.cropBox.map(boxJSON) ?? boxJSON(Box(x: 0, y: 0, width: Float(image.width), height: Float(image.height)))
                    entries.append(entry)
                }
                let name = uniqueName(for: path, taken: &names)
                let overlay = folder.appendingPathComponent(name + ".keypoints.png").path
                try drawOverlay(image: image, faces: drawn).writePNG(to: overlay)
                let result: [String: Any] = ["image": path, "width": image.width, "height": image.height, "overlay": overlay, "faces": entries]
                let json = try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys])
                try json.write(to: folder.appendingPathComponent(name + ".keypoints.json"), options: .atomic)
                results.append(result)
            }
            let json = try JSONSerialization.data(withJSONObject: results.count == 1 ? results[0] : results, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: json, as: UTF8.self))
        }
    }

    private func boxJSON(_ b: Box) -> [Double] { [Double(b.x), Double(b.y), Double(b.width), Double(b.height)] }

    /// The image's base name, with -2, -3, ... when images of the same name from other folders came first.
    private func uniqueName(for path: String, taken: inout Set<String>) -> String {
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        var name = base, n = 1
        while !taken.insert(name).inserted { n += 1; name = "\(base)-\(n)" }
        return name
    }

    /// The grey photo with each face's detector box (green; the crop box when there is none) and points (red).
    private func drawOverlay(image: GreyImage, faces: [(face: Face, points: [Float])]) -> RGBImage {
        var canvas = RGBImage(width: image.width, height: image.height)
        canvas.blit(image, x: 0, y: 0)
        let size = Float(max(image.width, image.height))
        let radius = max(1.5, size / 250)
        let thickness = max(1, Int(size / 400))
        for (face, points) in faces {
            if let b = face.detected?.box ?? face.cropBox {
                for t in 0..<thickness {
                    canvas.drawRectangle(x: Int(b.x.rounded()) - t, y: Int(b.y.rounded()) - t,
                                         width: Int(b.width.rounded()) + 2 * t, height: Int(b.height.rounded()) + 2 * t, .green)
                }
                if let score = face.detected?.score {
                    canvas.drawText(String(format: "%.2f", score), x: Int(b.x.rounded()), y: Int(b.y.rounded()) - 8 * thickness - 2,
                                    .green, scale: thickness)
                }
            }
            for i in stride(from: 0, to: points.count, by: 2) { canvas.drawDot(x: points[i], y: points[i + 1], .red, radius: radius) }
        }
        return canvas
    }

    private func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }
}

import ArgumentParser
import Engine
import FaceData
import Foundation
import SwiftMPI
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find keypoints in images: JSON on stdout (original image pixels) and an overlay PNG per image.")

    @Argument(help: "JPEG or PNG images.") var images: [String]
    @Option(help: "Checkpoint file (*.safetensors.zst).") var checkpoint: String
    @Option(help: "Face box x,y,w,h in image pixels (default: the whole image is the face crop).") var box: String?
    @Option(help: "Folder for the overlay PNGs (default: beside each image as NAME.keypoints.png).") var out: String?
    @Option(help: "Threads.") var threads: Int = Train.defaultThreads

    func parsedBox() throws -> Box? {
        guard let box else { return nil }
        let v = box.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, v[2] > 0, v[3] > 0 else { throw ValidationError("--box must be x,y,w,h with positive w and h, got '\(box)'") }
        return Box(x: v[0], y: v[1], width: v[2], height: v[3])
    }

    func run() throws {
        runReportingErrors {
            Parallel.setThreads(threads)
            let faceBox = try parsedBox()
            let model = try TrainedModel(checkpoint: try CheckpointFile.resolveExisting(checkpoint, communicator: MPI.world).relativePath, communicator: MPI.world)
            var results: [[String: Any]] = []
            for path in images {
                let image = try ImageCodec.readGrey(path: path)
                let points = try model.predict(image: image, box: faceBox, source: path)
                let overlay = try writeOverlay(image: image, points: points, source: path)
                results.append([
                    "image": path, "width": image.width, "height": image.height, "overlay": overlay,
                    "keypoints": stride(from: 0, to: points.count, by: 2).map { [Double(points[$0]), Double(points[$0 + 1])] },
                ])
            }
            let json = try JSONSerialization.data(withJSONObject: results.count == 1 ? results[0] : results, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: json, as: UTF8.self))
        }
    }

    private func writeOverlay(image: GreyImage, points: [Float], source: String) throws -> String {
        var canvas = RGBImage(width: image.width, height: image.height)
        canvas.blit(image, x: 0, y: 0)
        let radius = max(1.5, Float(max(image.width, image.height)) / 250)
        for i in stride(from: 0, to: points.count, by: 2) { canvas.drawDot(x: points[i], y: points[i + 1], .red, radius: radius) }
        let name = URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent + ".keypoints.png"
        let folder = out.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: source).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(name).path
        try canvas.writePNG(to: path)
        return path
    }
}

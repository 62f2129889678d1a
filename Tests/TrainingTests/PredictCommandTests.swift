import Checkpoints
import FaceData
import Foundation
import TestSupport
import Training
import XCTest

/// `fkp predict` with face detection, `fkp calibrate-detector`'s mapping in the checkpoint, on a
/// small checkpoint trained here in seconds (its keypoints are rough; where they land is not checked,
/// only what predict writes and where).
final class PredictCommandTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    let imm = TestPaths.sharedData.appendingPathComponent("imm_face_db")
    static var trained: URL?

    /// One tiny FaceNet checkpoint for the whole class.
    func checkpoint() throws -> URL {
        if let url = Self.trained { return url }
        let dir = TestPaths.temporaryDirectory("predict-ckpt")
        let r = try ProcessRunner.run(fkp, ["train", "--data", "synthetic:32", "--batch", "8", "--epochs", "1", "--steps-per-epoch", "2",
                                            "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path], timeout: 240)
        XCTAssertEqual(r.status, 0, r.output)
        let url = try XCTUnwrap(CheckpointFile.list(in: dir).last)
        Self.trained = url
        return url
    }

    /// A folder with one IMM photo (linked) and a faceless image: the inputs predict must not touch.
    func inputFolder() throws -> URL {
        let dir = TestPaths.temporaryDirectory("predict-in")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("01-1m.jpg"),
                                                   withDestinationURL: imm.appendingPathComponent("01-1m.jpg"))
        try ImageCodec.writePNG(faceless(), to: dir.appendingPathComponent("wall.png").path)
        return dir
    }

    func listing(_ dir: URL) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    func faceless() -> GreyImage {
        var image = GreyImage(width: 320, height: 240)
        for y in 0..<240 { for x in 0..<320 { image.pixels[y * 320 + x] = 0.2 + 0.6 * Float(x) / 320 + 0.15 * sin(Float(x) / 23) * cos(Float(y) / 31) } }
        return image
    }

    func testPredictDetectsTheFaceAndWritesOnlyIntoOut() throws {
        let input = try inputFolder()
        let before = try listing(input)
        let out = TestPaths.temporaryDirectory("predict-out")
        defer { try? FileManager.default.removeItem(at: out) }
        let photo = input.appendingPathComponent("01-1m.jpg").path
        let r = try ProcessRunner.run(fkp, ["predict", photo, "--checkpoint", try checkpoint().path, "--out", out.path, "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("no detector box mapping"), "old checkpoints warn: \(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let faces = try XCTUnwrap(json["faces"] as? [[String: Any]])
        XCTAssertEqual(faces.count, 1)
        let box = try XCTUnwrap(faces[0]["box"] as? [Double])
        XCTAssertEqual(box.count, 4)
        XCTAssertGreaterThan(try XCTUnwrap(faces[0]["score"] as? Double), 0)
        XCTAssertEqual((faces[0]["keypoints"] as? [[Double]])?.count, 68)
        XCTAssertEqual(try listing(out), ["01-1m.keypoints.json", "01-1m.keypoints.png"])
        XCTAssertEqual(json["overlay"] as? String, out.appendingPathComponent("01-1m.keypoints.png").path)
        XCTAssertEqual(try listing(input), before, "predict wrote beside its input")
    }

    func testNoFaceIsAnErrorUnlessAllowed() throws {
        let input = try inputFolder()
        let out = TestPaths.temporaryDirectory("predict-empty")
        defer { try? FileManager.default.removeItem(at: out) }
        let wall = input.appendingPathComponent("wall.png").path
        let args = ["predict", wall, "--checkpoint", try checkpoint().path, "--out", out.path, "--threads", "1"]
        let refused = try ProcessRunner.run(fkp, args)
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.stderr.contains("\(wall): no face found"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").filter { $0.hasPrefix("fkp: error") }.count, 1, refused.stderr)
        let allowed = try ProcessRunner.run(fkp, args + ["--allow-empty"])
        XCTAssertEqual(allowed.status, 0, allowed.output)
        let json = try JSONSerialization.jsonObject(with: Data(allowed.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((json["faces"] as? [Any])?.count, 0)
        // --no-detect: today's whole-image crop, one face without a detector box.
        let whole = try ProcessRunner.run(fkp, ["predict", wall, "--checkpoint", try checkpoint().path, "--out", out.path, "--no-detect", "--threads", "1"])
        XCTAssertEqual(whole.status, 0, whole.output)
        let faces = (try JSONSerialization.jsonObject(with: Data(whole.stdout.utf8)) as! [String: Any])["faces"] as! [[String: Any]]
        XCTAssertEqual(faces.count, 1)
        XCTAssertNil(faces[0]["box"])
        XCTAssertEqual(faces[0]["crop_box"] as? [Double], [0, 0, 320, 240])
    }

    /// The mapping survives the checkpoint rewrite exactly, tensors and other metadata untouched, and
    /// predict applies it (crop box = mapped detector box).
    func testBoxMappingRoundTripsThroughTheCheckpoint() throws {
        let dir = TestPaths.temporaryDirectory("predict-map")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors.zst")
        try FileManager.default.copyItem(at: try checkpoint(), to: url)
        let before = try CheckpointFile.read(url)
        XCTAssertNil(try TrainingCheckpoint.detectorBoxMapping(in: before, path: url.path))
        var mapping = DetectorBoxMapping()
        mapping.offsetX = 0.0123; mapping.offsetY = -0.0871; mapping.scaleWidth = 0.9137; mapping.scaleHeight = 1.0719
        mapping.faces = 321; mapping.rmsCentre = 0.031; mapping.rmsSize = 0.052
        try TrainingCheckpoint.storeDetectorBoxMapping(mapping, in: url)
        let after = try CheckpointFile.read(url)
        XCTAssertEqual(try TrainingCheckpoint.detectorBoxMapping(in: after, path: url.path), mapping)
        XCTAssertEqual(after.order, before.order)
        for name in before.order where before.entries[name]?.dtype == .f32 { XCTAssertEqual(after.floats(name), before.floats(name), name) }
        XCTAssertEqual(after.metadata.filter { $0.key != TrainingCheckpoint.detectorBoxMappingKey }, before.metadata)

        let out = dir.appendingPathComponent("out")
        let r = try ProcessRunner.run(fkp, ["predict", imm.appendingPathComponent("01-1m.jpg").path, "--checkpoint", url.path,
                                            "--out", out.path, "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertFalse(r.stderr.contains("no detector box mapping"), r.stderr)
        let face = ((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["faces"] as! [[String: Any]])[0]
        let d = (face["box"] as! [Double]).map(Float.init), c = (face["crop_box"] as! [Double]).map(Float.init)
        let expected = mapping.apply(Box(x: d[0], y: d[1], width: d[2], height: d[3]))
        for (a, b) in zip(c, [expected.x, expected.y, expected.width, expected.height]) { XCTAssertEqual(a, b, accuracy: 1e-3) }

        // A malformed mapping is refused with the file's name.
        var broken = after
        broken.metadata[TrainingCheckpoint.detectorBoxMappingKey] = "{\"offsetX\": \"left\"}"
        try CheckpointFile.write(broken, to: url)
        let refused = try ProcessRunner.run(fkp, ["predict", imm.appendingPathComponent("01-1m.jpg").path, "--checkpoint", url.path,
                                                  "--out", out.path, "--threads", "1"])
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.stderr.contains(url.path + ": metadata 'detector_box_mapping' is malformed"), refused.stderr)
    }

    /// The container's runtime stage takes its libraries from the binary: dlib's shared library is among them.
    func testContainerRuntimeGetsDlibsSharedLibrary() throws {
        let script = TestPaths.repoRoot.appendingPathComponent("deploy/container/runtime-packages.sh").path
        let r = try ProcessRunner.run("/bin/bash", [script, fkp], timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.split(separator: "\n").contains { $0.hasPrefix("libdlib") && !$0.hasSuffix("-dev") }, r.stdout)
    }
}

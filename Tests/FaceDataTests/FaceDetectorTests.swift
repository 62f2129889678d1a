import FaceData
import Foundation
import TestSupport
import XCTest

/// dlib's face detector through the C++ target, on real photos and composites, and the detector →
/// training box mapping.
final class FaceDetectorTests: XCTestCase {
    let imm = TestPaths.sharedData.appendingPathComponent("imm_face_db")

    /// A few IMM photos with their points (an IMM dataset over links to just these files).
    func photos(_ names: [String]) throws -> [FaceRecord] {
        let folder = TestPaths.temporaryDirectory("imm-few")
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        for name in names {
            for file in [name + ".jpg", name + ".asf"] {
                try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(file),
                                                           withDestinationURL: imm.appendingPathComponent(file))
            }
        }
        let dataset = try IMMDataset(folder: folder.path)
        return try (0..<dataset.count).map { try dataset.record(at: $0) }
    }

    /// IMM photos show exactly one person each: exactly one face, and it covers the annotated points.
    func testFindsExactlyOneFaceInIMMPhotos() throws {
        let records = try photos(["01-1m", "07-2m", "22-1f", "40-6m"])
        XCTAssertEqual(records.count, 4)
        for record in records {
            let (image, points, name) = (record.image, record.keypoints, record.source)
            let faces = try FaceDetector.detect(image, upsample: 0, source: name)
            XCTAssertEqual(faces.count, 1, "\(name): \(faces)")
            guard let face = faces.first else { continue }
            XCTAssertGreaterThan(face.score, 0, name)
            // The eyes, nose and mouth (the inner points' centre) lie in the box.
            let xs = stride(from: 0, to: points.count, by: 2).map { points[$0] }
            let ys = stride(from: 1, to: points.count, by: 2).map { points[$0] }
            let cx = xs.reduce(0, +) / Float(xs.count), cy = ys.reduce(0, +) / Float(ys.count)
            XCTAssertTrue(cx > face.box.x && cx < face.box.x + face.box.width && cy > face.box.y && cy < face.box.y + face.box.height,
                          "\(name): landmark centre (\(cx), \(cy)) outside \(face.box)")
            XCTAssertGreaterThan(face.box.width, 80, name)
            XCTAssertLessThan(face.box.width, 400, name)
        }
    }

    /// Two faces side by side in one picture: two detections, one on each half.
    func testFindsTwoFacesInAComposite() throws {
        let (canvas, boxes) = SyntheticComposite.twoFaces()
        let faces = try FaceDetector.detect(canvas, upsample: 1, source: "composite")
        XCTAssertEqual(faces.count, 2, "\(faces)")
        for box in boxes { XCTAssertNotNil(DetectorBoxMapping.match(faces, to: box), "no detection on the face in \(box): \(faces)") }
        let half = Float(canvas.width) / 2
        XCTAssertEqual(Set(faces.map { $0.box.centreX < half }), [true, false], "\(faces)")
        XCTAssertGreaterThanOrEqual(faces[0].score, faces.last!.score, "best score first")
    }

    func testFindsNoFaceInAFacelessImage() throws {
        let faces = try FaceDetector.detect(SyntheticComposite.faceless(), upsample: 1, source: "faceless")
        XCTAssertEqual(faces.count, 0, "\(faces)")
    }

    func testRejectsAnUpsamplingOutOfRange() {
        XCTAssertThrowsError(try FaceDetector.detect(GreyImage(width: 8, height: 8), upsample: 9, source: "tiny.png")) { error in
            XCTAssertTrue("\(error)".hasPrefix("tiny.png: "), "\(error)")
        }
    }

    /// The fit recovers a known mapping exactly, and the mapping moves a box as documented.
    func testMappingFitRecoversAKnownMapping() {
        var truth = DetectorBoxMapping()
        truth.offsetX = 0.02; truth.offsetY = -0.11; truth.scaleWidth = 0.93; truth.scaleHeight = 1.17
        let detected: [Box] = (0..<20).map { (i: Int) -> Box in
            let side = Float(50 + 7 * i)
            return Box(x: Float(10 * i), y: Float(3 * i), width: side, height: side)
        }
        let fitted = DetectorBoxMapping.fit(detected: detected, target: detected.map(truth.apply), upsample: 1)
        XCTAssertEqual(fitted.offsetX, truth.offsetX, accuracy: 1e-5)
        XCTAssertEqual(fitted.offsetY, truth.offsetY, accuracy: 1e-5)
        XCTAssertEqual(fitted.scaleWidth, truth.scaleWidth, accuracy: 1e-5)
        XCTAssertEqual(fitted.scaleHeight, truth.scaleHeight, accuracy: 1e-5)
        XCTAssertEqual(fitted.rmsCentre, 0, accuracy: 1e-5)
        XCTAssertEqual(fitted.faces, 20)
        let moved = truth.apply(Box(x: 100, y: 100, width: 100, height: 100))
        XCTAssertEqual(moved.centreX, 152, accuracy: 1e-4)
        XCTAssertEqual(moved.centreY, 139, accuracy: 1e-4)
        XCTAssertEqual(moved.width, 93, accuracy: 1e-4)
        XCTAssertEqual(moved.height, 117, accuracy: 1e-4)
        XCTAssertEqual(DetectorBoxMapping.identity.apply(moved), moved)
    }

    /// Faces alternately wider and taller than the average: the fitted crop (the box's larger side)
    /// is as large as the training crop on average, not smaller as the plain means would make it.
    func testMappingMatchesTheTrainingCropSizeOnAverage() {
        let detected = (0..<10).map { i in Box(x: 0, y: 0, width: Float(60 + i), height: Float(60 + i)) }
        let target = detected.enumerated().map { i, d in
            Box(x: 0, y: 0, width: d.width * (i % 2 == 0 ? 1.1 : 0.9), height: d.height * (i % 2 == 0 ? 0.9 : 1.1))
        }
        let square = DetectorBoxMapping.fit(detected: detected, target: target, upsample: 1)
        var ratios: Float = 0
        for (d, t) in zip(detected, target) {
            let m = square.apply(d)
            ratios += max(t.width, t.height) / max(m.width, m.height)
        }
        XCTAssertEqual(ratios / 10, 1, accuracy: 1e-5)
        XCTAssertEqual(square.scaleWidth, 1.1, accuracy: 1e-5)   // plain means: 1.0 in both directions
    }

    func testMatchPicksTheDetectionInsideTheFaceBox() {
        let a = DetectedFace(box: Box(x: 0, y: 0, width: 50, height: 50), score: 2)
        let b = DetectedFace(box: Box(x: 200, y: 0, width: 60, height: 60), score: 1)
        XCTAssertEqual(DetectorBoxMapping.match([a, b], to: Box(x: 190, y: -5, width: 80, height: 80)), b)
        XCTAssertNil(DetectorBoxMapping.match([a, b], to: Box(x: 100, y: 100, width: 40, height: 40)))
    }
}

/// Test pictures built from real and synthetic faces.
enum SyntheticComposite {
    /// Two synthetic faces side by side on one canvas: faces 1 and 2 of seed 1 (`fkp data synth`'s
    /// 000002.png and 000003.png), frontal enough for the HOG detector, which misses about a third
    /// of the synthetic faces (strong turns, and a drawing is not a photo).
    static func twoFaces(size: Int = 256) -> (GreyImage, [Box]) {
        let faces = SyntheticFaces(count: 3, seed: 1, imageSize: size)
        var canvas = GreyImage(width: 2 * size, height: size, fill: 0.5)
        var boxes: [Box] = []
        for k in 0..<2 {
            let record = try! faces.record(at: k + 1)
            for y in 0..<size { for x in 0..<size { canvas.pixels[y * canvas.width + k * size + x] = record.image.pixels[y * size + x] } }
            if let b = record.box { boxes.append(Box(x: b.x + Float(k * size), y: b.y, width: b.width, height: b.height)) }
        }
        return (canvas, boxes)
    }

    /// A smooth gradient with a few soft blobs: image-like, no face.
    static func faceless(width: Int = 320, height: Int = 240) -> GreyImage {
        var image = GreyImage(width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                let gradient = 0.2 + 0.6 * Float(x) / Float(width)
                let blob = 0.15 * sin(Float(x) / 23) * cos(Float(y) / 31)
                image.pixels[y * width + x] = min(1, max(0, gradient + blob))
            }
        }
        return image
    }
}

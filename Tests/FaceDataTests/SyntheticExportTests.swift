import CPNG
import FaceData
import Foundation
import TestSupport
import XCTest

/// Export to PNG + dlib XML, and the keypoint preview sheet, read back with libpng and a text parse.
final class SyntheticExportTests: XCTestCase {
    func testDlibXMLExportRoundTrips() throws {
        let faces = SyntheticFaces(count: 3, seed: 11, imageSize: 96)
        let dir = TestPaths.temporaryDirectory("fkp-synth-export")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeDlibXML(dataset: faces, count: 3, to: dir)

        let xml = try String(contentsOf: dir.appendingPathComponent("labels.xml"), encoding: .utf8)
        XCTAssertTrue(xml.contains("<image file='images/000001.png'>"))
        XCTAssertTrue(xml.contains("<image file='images/000003.png'>"))
        XCTAssertFalse(xml.contains("images/000004.png"))
        XCTAssertEqual(xml.components(separatedBy: "<part name=").count - 1, 3 * 68)
        XCTAssertTrue(xml.contains("<part name='67'"))

        // Every part of face 2 matches the record (rounded), and the box encloses them.
        let record = try faces.record(at: 1)
        let block = xml.components(separatedBy: "<image file='images/000002.png'>")[1]
            .components(separatedBy: "</image>")[0]
        let box = try XCTUnwrap(record.box)
        XCTAssertTrue(block.contains("top='\(Int(box.y.rounded(.down)))' left='\(Int(box.x.rounded(.down)))'"))
        for p in [0, 30, 36, 45, 67] {
            let x = Int(record.keypoints[2 * p].rounded()), y = Int(record.keypoints[2 * p + 1].rounded())
            XCTAssertTrue(block.contains("<part name='\(String(format: "%02d", p))' x='\(x)' y='\(y)'/>"), "part \(p)")
        }

        // The PNG decodes to the record's pixels (8-bit quantised).
        let (width, height, bytes) = try readGreyPNG(dir.appendingPathComponent("images/000002.png"))
        XCTAssertEqual(width, 96)
        XCTAssertEqual(height, 96)
        var maxError: Float = 0
        for i in 0..<bytes.count { maxError = max(maxError, abs(Float(bytes[i]) / 255 - record.image.pixels[i])) }
        XCTAssertLessThanOrEqual(maxError, 0.5 / 255 + 1e-6)
    }

    func testExportToUnwritableDirectoryFailsWithPath() {
        let faces = SyntheticFaces(count: 1, seed: 1, imageSize: 32)
        let blocker = TestPaths.temporaryDirectory("fkp-synth-blocked")
        defer { try? FileManager.default.removeItem(at: blocker) }
        // A regular file where the images directory should go.
        let target = blocker.appendingPathComponent("out")
        _ = FileManager.default.createFile(atPath: target.path, contents: Data("x".utf8))
        XCTAssertThrowsError(try writeDlibXML(dataset: faces, to: target)) { error in
            XCTAssertTrue("\(error)".contains(target.path), "\(error)")
        }
    }

    /// Writes the preview sheet (to $FKP_SYNTH_PREVIEW when set, for looking at it) and prints the
    /// single-core rendering rate; the rate is reported, not asserted.
    func testPreviewSheet() throws {
        let faces = SyntheticFaces(count: 16, seed: 2024)
        let keep = ProcessInfo.processInfo.environment["FKP_SYNTH_PREVIEW"]
        let dir = TestPaths.temporaryDirectory("fkp-synth-preview")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = keep.map { URL(fileURLWithPath: $0) } ?? dir.appendingPathComponent("preview.png")
        try writeKeypointPreview(dataset: faces, count: 16, columns: 4, to: file)
        if let keep {
            let env = ProcessInfo.processInfo.environment
            let first = Int(env["FKP_SYNTH_FIRST"] ?? "0") ?? 0
            try writeKeypointPreview(dataset: faces, count: 4, first: first, columns: 2, cell: 512, markKeypoints: false,
                                     to: URL(fileURLWithPath: keep.replacingOccurrences(of: ".png", with: "-plain.png")))
        }
        let (width, height, _) = try readGreyPNG(file)
        XCTAssertEqual(width, 1024)
        XCTAssertEqual(height, 1024)
        // The rendering rate is a benchmark, not a test: `fkp bench data synthetic:200`.
    }

    private func readGreyPNG(_ url: URL) throws -> (Int, Int, [UInt8]) {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&png, url.path) != 0 else {
            throw DataError(file: url.path, "cannot read PNG")
        }
        png.format = UInt32(PNG_FORMAT_GRAY)
        let width = Int(png.width), height = Int(png.height)
        var bytes = [UInt8](repeating: 0, count: width * height)
        let ok = bytes.withUnsafeMutableBufferPointer {
            png_image_finish_read(&png, nil, $0.baseAddress, Int32(width), nil)
        }
        guard ok != 0 else { throw DataError(file: url.path, "cannot decode PNG") }
        return (width, height, bytes)
    }
}

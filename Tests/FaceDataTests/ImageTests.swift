import FaceData
import Foundation
import TestSupport
import XCTest

final class ImageCodecTests: XCTestCase {
    func testGreyPNGRoundTripsThroughEncoder() throws {
        let values: [Float] = (0..<(7 * 5)).map { Float($0 * 7 % 256) / 255 }
        let image = GreyImage(width: 7, height: 5, pixels: values)
        let decoded = try ImageCodec.decodeGrey(try ImageCodec.encodePNG(image), source: "mem.png")
        XCTAssertEqual(decoded.width, 7); XCTAssertEqual(decoded.height, 5)
        for i in 0..<values.count { XCTAssertEqual(decoded.pixels[i], values[i], accuracy: 1e-6) }
    }

    func testColourPNGBecomesBT601Luma() throws {
        let rgb: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 90]
        let data = try ImageCodec.encodePNG(width: 4, height: 1, channels: 3, samples: rgb)
        let grey = try ImageCodec.decodeGrey(data, source: "rgb.png")
        let expected: [Float] = [0.299, 0.587, 0.114, (0.299 * 10 + 0.587 * 200 + 0.114 * 90) / 255]
        for i in 0..<4 { XCTAssertEqual(grey.pixels[i], expected[i], accuracy: 1e-4) }
    }

    func testRGBAGreyAlphaSixteenBitAndPalettePNGs() throws {
        // RGBA 8-bit: alpha composites on black.
        let rgba = TinyPNG.make(width: 2, height: 1, bitDepth: 8, colourType: 6, rows: [[200, 100, 50, 255, 200, 100, 50, 0]])
        let a = try ImageCodec.decodeGrey(rgba, source: "rgba.png")
        XCTAssertEqual(a.pixels[0], (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, accuracy: 1e-4)
        XCTAssertEqual(a.pixels[1], 0, accuracy: 1e-6)
        // 16-bit grey: values pass through unchanged (no gamma curve).
        let g16 = TinyPNG.make(width: 2, height: 1, bitDepth: 16, colourType: 0, rows: [[0x40, 0x00, 0xFF, 0xFF]])
        let b = try ImageCodec.decodeGrey(g16, source: "g16.png")
        XCTAssertEqual(b.pixels[0], Float(0x4000) / 65535, accuracy: 1e-4)
        XCTAssertEqual(b.pixels[1], 1, accuracy: 1e-4)
        // 16-bit RGB.
        let rgb16 = TinyPNG.make(width: 1, height: 1, bitDepth: 16, colourType: 2, rows: [[0xFF, 0xFF, 0, 0, 0, 0]])
        XCTAssertEqual(try ImageCodec.decodeGrey(rgb16, source: "rgb16.png").pixels[0], 0.299, accuracy: 1e-3)
        // Grey + alpha, and a palette image.
        let ga = TinyPNG.make(width: 1, height: 1, bitDepth: 8, colourType: 4, rows: [[128, 255]])
        XCTAssertEqual(try ImageCodec.decodeGrey(ga, source: "ga.png").pixels[0], 128 / 255, accuracy: 1e-4)
        let pal = TinyPNG.make(width: 2, height: 1, bitDepth: 8, colourType: 3, rows: [[1, 0]], palette: [0, 0, 255, 0, 255, 0])
        let c = try ImageCodec.decodeGrey(pal, source: "pal.png")
        XCTAssertEqual(c.pixels[0], 0.587, accuracy: 1e-3)
        XCTAssertEqual(c.pixels[1], 0.114, accuracy: 1e-3)
    }

    func testRealJPEGDecodesAndFormatIsSniffedByContent() throws {
        let path = immFolder + "/01-1m.jpg"
        let image = try ImageCodec.readGrey(path: path)
        XCTAssertEqual(image.width, 640); XCTAssertEqual(image.height, 480)
        let mean = image.pixels.reduce(0, +) / Float(image.pixels.count)
        XCTAssertGreaterThan(mean, 0.1); XCTAssertLessThan(mean, 0.9)
        XCTAssertTrue(try ImageCodec.size(path: path) == (640, 480))
        // A PNG named .jpg decodes as PNG.
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("really-a-png.jpg").path
        try ImageCodec.writePNG(GreyImage(width: 3, height: 2, fill: 0.5), to: fake)
        XCTAssertEqual(try ImageCodec.readGrey(path: fake).pixels[0], 128 / 255, accuracy: 1e-6)
        XCTAssertTrue(try ImageCodec.size(path: fake) == (3, 2))
    }

    func testCorruptTruncatedAndUnsupportedFilesNameTheFile() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: immFolder + "/01-1m.jpg"))
        let cases: [(String, Data, String)] = [
            ("truncated.jpg", jpeg.prefix(jpeg.count / 2), "JPEG"),
            ("header-only.jpg", jpeg.prefix(20), "JPEG"),
            ("truncated.png", try ImageCodec.encodePNG(GreyImage(width: 64, height: 64, fill: 0.3)).prefix(40), "PNG"),
            ("text.jpg", Data("hello, not an image".utf8), "unsupported"),
            ("empty.png", Data(), "empty"),
        ]
        for (name, bytes, word) in cases {
            let path = dir.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: path))
            assertDataError(try ImageCodec.readGrey(path: path), file: name, line: nil, contains: word)
        }
        assertDataError(try ImageCodec.readGrey(path: dir.appendingPathComponent("missing.jpg").path), file: "missing.jpg", line: nil)
    }
}

final class ImageOpsTests: XCTestCase {
    func testAffineComposeAndInverse() {
        let m = Affine2D.rotation(radians: 0.3).followed(by: .shearX(0.07)).followed(by: .translation(5, -2))
            .followed(by: .scale(1.5, 0.8))
        let p = m.apply(3, 4)
        let back = m.inverted().apply(p.x, p.y)
        XCTAssertEqual(back.x, 3, accuracy: 1e-4); XCTAssertEqual(back.y, 4, accuracy: 1e-4)
        let t = Affine2D.translation(1, 2).followed(by: .scale(2, 3)).apply(1, 1)
        XCTAssertEqual(t.x, 4); XCTAssertEqual(t.y, 9)
    }

    func testIntegerShiftIsExactAndOutsideIsFilled() {
        let source = GreyImage(width: 5, height: 4, pixels: (0..<20).map { Float($0) / 20 })
        let shifted = source.warped(by: .translation(2, 1), width: 5, height: 4, fill: -1)
        for y in 0..<4 {
            for x in 0..<5 {
                let expected: Float = (x >= 2 && y >= 1) ? source.pixels[(y - 1) * 5 + x - 2] : -1
                XCTAssertEqual(shifted.pixels[y * 5 + x], expected, accuracy: 1e-6, "(\(x), \(y))")
            }
        }
    }

    func testCropPadsAndResizeKeepsConstantsAndCentres() {
        let source = GreyImage(width: 4, height: 4, fill: 0.7)
        let crop = source.cropped(x: -1, y: 2, width: 3, height: 3, fill: 0.2)
        XCTAssertEqual(crop.pixels, [0.2, 0.7, 0.7, 0.2, 0.7, 0.7, 0.2, 0.2, 0.2])
        let big = GreyImage(width: 640, height: 480, fill: 0.4).resized(width: 160, height: 120)
        XCTAssertTrue(big.pixels.allSatisfy { abs($0 - 0.4) < 1e-5 })
        // A bright dot stays under its mapped position through a 4x shrink (antialiased path).
        let dotted = dottedImage(width: 400, height: 300, points: [201, 149], background: 0)
        let m = GreyImage.resizeTransform(fromWidth: 400, fromHeight: 300, toWidth: 100, toHeight: 75)
        let small = dotted.warped(by: m, width: 100, height: 75)
        let p = m.apply(201, 149)
        let peak = small.pixels.indices.max { small.pixels[$0] < small.pixels[$1] }!
        XCTAssertEqual(Float(peak % 100), p.x, accuracy: 1)
        XCTAssertEqual(Float(peak / 100), p.y, accuracy: 1)
    }

    func testRotatedDotFollowsItsKeypoint() {
        let points: [Float] = [30, 40, 70, 25, 50, 60]
        let image = dottedImage(width: 100, height: 80, points: points)
        let m = Affine2D.translation(-50, -40).followed(by: .rotation(radians: 0.4)).followed(by: .shearX(0.08))
            .followed(by: .scale(0.9, 0.9)).followed(by: .translation(48, 42))
        let out = image.warped(by: m, width: 100, height: 80)
        let moved = m.apply(points: points)
        for k in 0..<3 {
            XCTAssertGreaterThan(out.sample(moved[2 * k], moved[2 * k + 1]), 0.8, "dot \(k)")
        }
    }
}

final class DrawingTests: XCTestCase {
    func testCanvasPrimitivesAndPNG() throws {
        var canvas = RGBImage(width: 40, height: 30, fill: .black)
        canvas.drawLine(0, 0, 39, 29, .red)
        XCTAssertEqual(canvas.pixel(0, 0), .red); XCTAssertEqual(canvas.pixel(39, 29), .red)
        canvas.fillCircle(centreX: 20, centreY: 5, radius: 2, .green)
        XCTAssertEqual(canvas.pixel(20, 5), .green); XCTAssertEqual(canvas.pixel(22, 7), .black)
        canvas.drawRectangle(x: 2, y: 20, width: 5, height: 5, .blue)
        XCTAssertEqual(canvas.pixel(2, 24), .blue); XCTAssertEqual(canvas.pixel(4, 22), .black)
        canvas.setPixel(-3, 100, .white)  // clipped, no crash
        canvas.blit(GreyImage(width: 2, height: 2, fill: 1), x: 30, y: 0, width: 4, height: 4)
        XCTAssertEqual(canvas.pixel(33, 3), .white)
        var text = RGBImage(width: 60, height: 9)
        text.drawText("AB 1.", x: 1, y: 1, .white)
        let lit = stride(from: 0, to: text.samples.count, by: 3).filter { text.samples[$0] == 255 }.count
        XCTAssertGreaterThan(lit, 30)
        XCTAssertEqual(RGBImage.textWidth("AB 1."), 30)
        let decoded = try ImageCodec.decodeGrey(try canvas.encodePNG(), source: "canvas.png")
        XCTAssertEqual(decoded.width, 40)
        XCTAssertEqual(decoded.pixels[0], 0.299 * 230 / 255 + 0.587 * 40 / 255 + 0.114 * 40 / 255, accuracy: 1e-3)
    }
}

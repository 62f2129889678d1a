import FaceData
import Foundation
import TestSupport
import XCTest

/// Builds PNG files byte by byte (stored zlib blocks), so tests can make the kinds libpng's simple
/// writer cannot: 16-bit, grey+alpha, RGBA, palette.
enum TinyPNG {
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc(body))
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        return out + bigEndian(b << 16 | a)
    }

    /// `rows` are the raw scanline bytes without the filter byte.
    static func make(width: Int, height: Int, bitDepth: UInt8, colourType: UInt8, rows: [[UInt8]],
                     palette: [UInt8]? = nil) -> Data {
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        bytes += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [bitDepth, colourType, 0, 0, 0])
        if let palette { bytes += chunk("PLTE", palette) }
        bytes += chunk("IDAT", zlibStored(rows.flatMap { [0] + $0 }))
        bytes += chunk("IEND", [])
        return Data(bytes)
    }
}

/// A grey test picture: a dark background with bright dots at the given points (radius 2).
func dottedImage(width: Int, height: Int, points: [Float], background: Float = 0.1) -> GreyImage {
    var image = GreyImage(width: width, height: height, fill: background)
    for k in stride(from: 0, to: points.count, by: 2) {
        for y in max(0, Int(points[k + 1]) - 3)...min(height - 1, Int(points[k + 1]) + 3) {
            for x in max(0, Int(points[k]) - 3)...min(width - 1, Int(points[k]) + 3) {
                let dx = Float(x) - points[k], dy = Float(y) - points[k + 1]
                if dx * dx + dy * dy <= 4.5 { image.pixels[y * width + x] = 1 }
            }
        }
    }
    return image
}

/// A plausible 68-point face (normalised 0...1 layout, mirror-symmetric) placed in a box.
func syntheticFace68(x: Float, y: Float, size: Float) -> [Float] {
    var unit = [Float](repeating: 0, count: 136)
    func set(_ i: Int, _ px: Float, _ py: Float) { unit[2 * i] = px; unit[2 * i + 1] = py }
    for i in 0...16 { let t = Float(i) / 16 * .pi; set(i, 0.5 - 0.5 * cos(t), 0.35 + 0.6 * sin(t)) }
    for i in 0..<5 { set(17 + i, 0.12 + 0.07 * Float(i), 0.25 - 0.03 * Float(min(i, 4 - i))); set(26 - i, 0.88 - 0.07 * Float(i), 0.25 - 0.03 * Float(min(i, 4 - i))) }
    for i in 0..<4 { set(27 + i, 0.5, 0.35 + 0.07 * Float(i)) }
    for i in 0..<5 { set(31 + i, 0.4 + 0.05 * Float(i), 0.63 - (i == 2 ? 0.02 : 0)) }
    let eye: [(Float, Float)] = [(0, 0), (0.05, -0.03), (0.1, -0.03), (0.15, 0), (0.1, 0.03), (0.05, 0.03)]
    for (k, p) in eye.enumerated() { set(36 + k, 0.18 + p.0, 0.36 + p.1) }
    for (k, i) in [45, 44, 43, 42, 47, 46].enumerated() { set(i, 0.82 - eye[k].0, 0.36 + eye[k].1) }
    for i in 0..<12 { let t = Float(i) / 12 * 2 * .pi; set(48 + i, 0.5 - 0.17 * cos(t), 0.78 - 0.06 * sin(t)) }
    for i in 0..<8 { let t = Float(i) / 8 * 2 * .pi; set(60 + i, 0.5 - 0.12 * cos(t), 0.78 - 0.02 * sin(t)) }
    return (0..<136).map { $0 % 2 == 0 ? x + unit[$0] * size : y + unit[$0] * size }
}

/// Writes a small 300-W-style folder: `count` PNG faces with .pts files, in two sub-folders.
func writePTSFolder(at root: URL, count: Int) throws -> [[Float]] {
    var all: [[Float]] = []
    for i in 0..<count {
        let folder = root.appendingPathComponent(i % 2 == 0 ? "afw" : "helen/trainset")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let points = syntheticFace68(x: 20 + Float(i), y: 15, size: 50)
        let image = dottedImage(width: 100, height: 90, points: points)
        try ImageCodec.writePNG(image, to: folder.appendingPathComponent("face\(i).png").path)
        try ptsText(points).write(to: folder.appendingPathComponent("face\(i).pts"), atomically: true, encoding: .utf8)
        all.append(points)
    }
    return all
}

/// .pts text (1-based coordinates, as 300-W writes them).
func ptsText(_ points: [Float]) -> String {
    var text = "version: 1\nn_points:  \(points.count / 2)\n{\n"
    for k in stride(from: 0, to: points.count, by: 2) { text += "\(points[k] + 1) \(points[k + 1] + 1)\n" }
    return text + "}\n"
}

/// Asserts `body` throws a DataError whose one-line description names `file` (and `line`).
func assertDataError(_ body: @autoclosure () throws -> Any, file: String, line: Int?, contains: String? = nil,
                     _ message: String = "", sourceFile: StaticString = #filePath, sourceLine: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a DataError naming \(file) \(message)", file: sourceFile, line: sourceLine)
    } catch let error as DataError {
        XCTAssertTrue(error.file.hasSuffix(file), "\(error) should name \(file)", file: sourceFile, line: sourceLine)
        if let line { XCTAssertEqual(error.line, line, "\(error)", file: sourceFile, line: sourceLine) }
        XCTAssertFalse(error.description.contains("\n"), "one line: \(error)", file: sourceFile, line: sourceLine)
        if let contains { XCTAssertTrue(error.description.contains(contains), "\(error)", file: sourceFile, line: sourceLine) }
    } catch {
        XCTFail("expected a DataError, got \(error)", file: sourceFile, line: sourceLine)
    }
}

let immFolder = TestPaths.sharedData.appendingPathComponent("imm_face_db").path
let ytFolder = TestPaths.sharedData.appendingPathComponent("ytfaces68").path

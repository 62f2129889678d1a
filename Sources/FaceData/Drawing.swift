/// An RGB canvas for pictures of faces and keypoints (data grids, training reports): lines, dots,
/// rectangles, grey images blitted in, 5×7 bitmap text, PNG output.
import Foundation

public struct RGB: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    public static let black = RGB(0, 0, 0), white = RGB(255, 255, 255)
    public static let red = RGB(230, 40, 40), green = RGB(40, 220, 60), blue = RGB(60, 110, 255)
    public static let yellow = RGB(250, 220, 40), cyan = RGB(40, 220, 230), magenta = RGB(230, 60, 220)
    public static let grey = RGB(128, 128, 128)
}

public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    /// Row-major, interleaved r, g, b.
    public var samples: [UInt8]

    public init(width: Int, height: Int, fill: RGB = .black) {
        self.width = width; self.height = height
        samples = [UInt8](repeating: 0, count: width * height * 3)
        self.fill(fill)
    }

    public mutating func fill(_ colour: RGB) {
        for i in 0..<(width * height) {
            samples[3 * i] = colour.r; samples[3 * i + 1] = colour.g; samples[3 * i + 2] = colour.b
        }
    }

    public func pixel(_ x: Int, _ y: Int) -> RGB {
        let i = 3 * (y * width + x)
        return RGB(samples[i], samples[i + 1], samples[i + 2])
    }

    /// Sets one pixel; coordinates outside the canvas are ignored (drawing clips).
    public mutating func setPixel(_ x: Int, _ y: Int, _ colour: RGB) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = 3 * (y * width + x)
        samples[i] = colour.r; samples[i + 1] = colour.g; samples[i + 2] = colour.b
    }

    /// Bresenham line between two pixels, both ends included.
    public mutating func drawLine(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ colour: RGB) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            setPixel(x, y, colour)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    public mutating func fillCircle(centreX cx: Float, centreY cy: Float, radius: Float, _ colour: RGB) {
        let r2 = radius * radius
        let x0 = Int((cx - radius).rounded(.down)), x1 = Int((cx + radius).rounded(.up))
        let y0 = Int((cy - radius).rounded(.down)), y1 = Int((cy + radius).rounded(.up))
        for y in y0...y1 {
            for x in x0...x1 where (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) <= r2 {
                setPixel(x, y, colour)
            }
        }
    }

    /// A keypoint marker: a small filled circle.
    public mutating func drawDot(x: Float, y: Float, _ colour: RGB, radius: Float = 1.5) {
        fillCircle(centreX: x, centreY: y, radius: radius, colour)
    }

    public mutating func drawRectangle(x: Int, y: Int, width w: Int, height h: Int, _ colour: RGB, filled: Bool = false) {
        guard w > 0, h > 0 else { return }
        if filled {
            for j in y..<(y + h) { for i in x..<(x + w) { setPixel(i, j, colour) } }
        } else {
            drawLine(x, y, x + w - 1, y, colour); drawLine(x, y + h - 1, x + w - 1, y + h - 1, colour)
            drawLine(x, y, x, y + h - 1, colour); drawLine(x + w - 1, y, x + w - 1, y + h - 1, colour)
        }
    }

    /// Draws a grey image (values clamped to [0, 1]) scaled to w×h at (x, y), bilinear.
    public mutating func blit(_ grey: GreyImage, x: Int, y: Int, width w: Int? = nil, height h: Int? = nil) {
        let w = w ?? grey.width, h = h ?? grey.height
        let scaled = (w == grey.width && h == grey.height) ? grey : grey.resized(width: w, height: h)
        for j in 0..<h {
            for i in 0..<w {
                let v = UInt8((min(max(scaled.pixels[j * w + i], 0), 1) * 255).rounded())
                setPixel(x + i, y + j, RGB(v, v, v))
            }
        }
    }

    /// Text in the built-in 5×7 font, each glyph 6·scale pixels wide (lower case prints as upper case).
    public mutating func drawText(_ text: String, x: Int, y: Int, _ colour: RGB, scale: Int = 1) {
        var penX = x
        for character in text {
            let rows = BitmapFont.glyph(character)
            for (row, bits) in rows.enumerated() {
                for column in 0..<5 where bits & (0x10 >> UInt8(column)) != 0 {
                    for dy in 0..<scale { for dx in 0..<scale {
                        setPixel(penX + column * scale + dx, y + row * scale + dy, colour)
                    } }
                }
            }
            penX += 6 * scale
        }
    }

    public static func textWidth(_ text: String, scale: Int = 1) -> Int { text.count * 6 * scale }

    public func encodePNG() throws -> Data {
        try ImageCodec.encodePNG(width: width, height: height, channels: 3, samples: samples)
    }

    public func writePNG(to path: String) throws {
        let data = try encodePNG()
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw DataError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }
}

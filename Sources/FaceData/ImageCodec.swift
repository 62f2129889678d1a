/// Image files in and out: JPEG (libjpeg-turbo) and PNG (libpng's simplified API) decoded to grey,
/// chosen by content rather than by extension (real datasets ship PNGs named `.jpg`), and PNG encoding.
import CPNG
import CTurboJPEG
import Foundation

public enum ImageFormat: Sendable, Equatable {
    case jpeg, png

    /// Recognises a format from the first bytes of a file; nil for anything else.
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 8, (0..<8).allSatisfy({ bytes[$0] == pngMagic[$0] }) { return .png }
        return nil
    }
}

/// ITU-R BT.601 luma weights, the ones JPEG's own Y channel uses, so JPEG and PNG agree.
@usableFromInline let lumaR: Float = 0.299, lumaG: Float = 0.587, lumaB: Float = 0.114

public enum ImageCodec {
    /// The most pixels an image may claim in its header before anything is allocated for it
    /// (`--max-pixels`). A 60-byte PNG can claim 60000x60000 pixels (14 GB of RGBA); PIL refuses
    /// images over 2 x 89.5 MP for the same reason. 100 MP is far above any face photo (a 24 MP
    /// camera frame is 6000x4000) and bounds one decode to about 1.2 GB (16-bit RGBA + floats).
    public static let defaultMaxPixels = 100_000_000

    /// Reads and decodes the image file at `path` to grey; errors name the file.
    public static func readGrey(path: String, maxPixels: Int = defaultMaxPixels) throws -> GreyImage {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read image file (missing or unreadable)")
        }
        return try decodeGrey(data, source: path, maxPixels: maxPixels)
    }

    /// Decodes JPEG or PNG bytes to grey in [0, 1]. `source` names the file in errors. An image
    /// whose header claims more than `maxPixels` pixels is an error before any pixel memory is taken.
    public static func decodeGrey(_ data: Data, source: String, maxPixels: Int = defaultMaxPixels) throws -> GreyImage {
        try data.withUnsafeBytes { bytes in
            switch ImageFormat.sniff(bytes) {
            case .jpeg: return try decodeJPEG(bytes, source: source, maxPixels: maxPixels)
            case .png: return try decodePNG(bytes, source: source, maxPixels: maxPixels)
            case nil:
                throw DataError(file: source, bytes.isEmpty ? "empty image file"
                                : "unsupported image format (neither JPEG nor PNG by content)")
            }
        }
    }

    /// Width and height from the header only (no pixel decoding): used to check keypoints against
    /// image bounds when a dataset is opened, so an over-limit image is refused there already.
    public static func size(path: String, maxPixels: Int = defaultMaxPixels) throws -> (width: Int, height: Int) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read image file (missing or unreadable)")
        }
        return try data.withUnsafeBytes { bytes in
            switch ImageFormat.sniff(bytes) {
            case .jpeg:
                guard let handle = tjInitDecompress() else { throw DataError(file: path, "cannot start JPEG decoder") }
                defer { tjDestroy(handle) }
                return try jpegHeader(handle, bytes, source: path, maxPixels: maxPixels)
            case .png:
                var image = png_image()
                image.version = UInt32(PNG_IMAGE_VERSION)
                defer { png_image_free(&image) }
                return try pngHeader(&image, bytes, source: path, maxPixels: maxPixels)
            case nil:
                throw DataError(file: path, "unsupported image format (neither JPEG nor PNG by content)")
            }
        }
    }

    /// Refuses a header's size when it is empty or over the pixel limit (a decompression bomb).
    static func checkPixels(width: Int, height: Int, maxPixels: Int, format: String, source: String) throws {
        guard width > 0, height > 0 else { throw DataError(file: source, "corrupt \(format) header: \(width)x\(height) pixels") }
        guard width * height <= maxPixels else {
            throw DataError(file: source, "\(format) header claims \(width)x\(height) pixels, over the limit of "
                            + "\(maxPixels) (--max-pixels; a decompression bomb?)")
        }
    }

    /// Reads a JPEG header and checks its size before anything is allocated for the pixels.
    static func jpegHeader(_ handle: tjhandle, _ bytes: UnsafeRawBufferPointer, source: String,
                           maxPixels: Int) throws -> (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0, sub: Int32 = 0, space: Int32 = 0
        let base = bytes.bindMemory(to: UInt8.self).baseAddress!
        if tjDecompressHeader3(handle, base, UInt(bytes.count), &w, &h, &sub, &space) != 0 {
            throw DataError(file: source, "corrupt JPEG header: \(String(cString: tjGetErrorStr2(handle)))")
        }
        try checkPixels(width: Int(w), height: Int(h), maxPixels: maxPixels, format: "JPEG", source: source)
        return (Int(w), Int(h))
    }

    /// Reads a PNG header (libpng's begin_read allocates only its own small state) and checks its size.
    static func pngHeader(_ image: inout png_image, _ bytes: UnsafeRawBufferPointer, source: String,
                          maxPixels: Int) throws -> (width: Int, height: Int) {
        guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
            throw DataError(file: source, "corrupt PNG: \(pngMessage(&image))")
        }
        try checkPixels(width: Int(image.width), height: Int(image.height), maxPixels: maxPixels, format: "PNG", source: source)
        return (Int(image.width), Int(image.height))
    }

    static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, source: String, maxPixels: Int) throws -> GreyImage {
        guard let handle = tjInitDecompress() else { throw DataError(file: source, "cannot start JPEG decoder") }
        defer { tjDestroy(handle) }
        let base = bytes.bindMemory(to: UInt8.self).baseAddress!
        let (width, height) = try jpegHeader(handle, bytes, source: source, maxPixels: maxPixels)
        let w = Int32(width), h = Int32(height)
        var grey = [UInt8](repeating: 0, count: width * height)
        // Decoding straight to TJPF_GRAY keeps only the Y channel, which is BT.601 luma already.
        // Warnings (a truncated file decodes with a grey tail) count as errors: such a face is damaged.
        let status = grey.withUnsafeMutableBufferPointer { out in
            tjDecompress2(handle, base, UInt(bytes.count), out.baseAddress, w, w, h,
                          Int32(TJPF_GRAY.rawValue), Int32(TJFLAG_STOPONWARNING))
        }
        if status != 0 {
            throw DataError(file: source, "corrupt or truncated JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        var pixels = [Float](repeating: 0, count: width * height)
        pixels.withUnsafeMutableBufferPointer { out in
            grey.withUnsafeBufferPointer { g in
                let scale: Float = 1 / 255
                for i in 0..<g.count { out[i] = Float(g[i]) * scale }
            }
        }
        return GreyImage(width: width, height: height, pixels: pixels)
    }

    static func pngMessage(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func decodePNG(_ bytes: UnsafeRawBufferPointer, source: String, maxPixels: Int) throws -> GreyImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        // Frees libpng's state on every path (finish_read frees it too; a second free is a no-op).
        defer { png_image_free(&image) }
        let (width, height) = try pngHeader(&image, bytes, source: source, maxPixels: maxPixels)
        // Always read RGBA so grey, palette, colour and alpha files take one path. 16-bit files are
        // read as 16-bit "linear" RGBA: libpng then passes the samples through unchanged (an 8-bit
        // read would apply an sRGB curve to them) and premultiplies alpha, i.e. composites on black;
        // for 8-bit files we composite on black by hand to match.
        let sixteen = image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA) | (sixteen ? UInt32(PNG_FORMAT_FLAG_LINEAR) : 0)
        var pixels = [Float](repeating: 0, count: width * height)
        if sixteen {
            var rgba = [UInt16](repeating: 0, count: width * height * 4)
            let ok = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw DataError(file: source, "corrupt or truncated PNG: \(pngMessage(&image))") }
            let scale: Float = 1 / 65535
            for i in 0..<(width * height) {
                pixels[i] = (lumaR * Float(rgba[4 * i]) + lumaG * Float(rgba[4 * i + 1])
                             + lumaB * Float(rgba[4 * i + 2])) * scale
            }
        } else {
            var rgba = [UInt8](repeating: 0, count: width * height * 4)
            let ok = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else { throw DataError(file: source, "corrupt or truncated PNG: \(pngMessage(&image))") }
            let scale: Float = 1 / (255 * 255)
            for i in 0..<(width * height) {
                let luma = lumaR * Float(rgba[4 * i]) + lumaG * Float(rgba[4 * i + 1]) + lumaB * Float(rgba[4 * i + 2])
                pixels[i] = luma * Float(rgba[4 * i + 3]) * scale
            }
        }
        return GreyImage(width: width, height: height, pixels: pixels)
    }

    /// Encodes 8-bit samples (1 channel: grey, 3: RGB) as PNG bytes.
    public static func encodePNG(width: Int, height: Int, channels: Int, samples: [UInt8]) throws -> Data {
        precondition(channels == 1 || channels == 3, "encodePNG: 1 or 3 channels")
        precondition(samples.count == width * height * channels, "encodePNG: sample count")
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 3 ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0
        var size = 0
        let stride = Int32(width * channels)
        // First call measures, second writes.
        let measured = samples.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard measured != 0, size > 0 else { throw DataError(file: "<png>", "PNG encoding failed: \(pngMessage(&image))") }
        var out = Data(count: size)
        let ok = out.withUnsafeMutableBytes { dst in
            samples.withUnsafeBytes { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
        }
        guard ok != 0 else { throw DataError(file: "<png>", "PNG encoding failed: \(pngMessage(&image))") }
        return out.prefix(size)
    }

    /// Encodes a grey image (values clamped to [0, 1]) as PNG bytes.
    public static func encodePNG(_ image: GreyImage) throws -> Data {
        let samples = image.pixels.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
        return try encodePNG(width: image.width, height: image.height, channels: 1, samples: samples)
    }

    /// Writes a grey image as a PNG file; errors name the file.
    public static func writePNG(_ image: GreyImage, to path: String) throws {
        do { try encodePNG(image).write(to: URL(fileURLWithPath: path)) } catch let error as DataError {
            throw DataError(file: path, error.message)
        } catch { throw DataError(file: path, "cannot write: \(error.localizedDescription)") }
    }
}

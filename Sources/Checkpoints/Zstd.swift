import CZstd
import Foundation

/// zstd compression of whole buffers (checkpoints), with the frame checksum on so a corrupt
/// file is detected rather than loaded.
public enum Zstd {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 3) throws -> [UInt8] {
        guard let ctx = ZSTD_createCCtx() else { throw Failure(description: "zstd: cannot create a compression context") }
        defer { ZSTD_freeCCtx(ctx) }
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1)
        var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
        let written = output.withUnsafeMutableBytes { out in
            ZSTD_compress2(ctx, out.baseAddress, out.count, input.baseAddress, input.count)
        }
        if ZSTD_isError(written) != 0 { throw Failure(description: "zstd: \(String(cString: ZSTD_getErrorName(written)))") }
        output.removeLast(output.count - written)
        return output
    }

    /// The most bytes one checkpoint may decompress to. A frame header can claim any size (up to
    /// 2^64) and a few kilobytes of zstd can expand to gigabytes, so the size is checked before
    /// allocating and again while streaming. 8 GiB is far above the largest model here (ResNet-50
    /// with its AdamW state: about 300 MB).
    public static let defaultMaxDecodedBytes = 8 << 30

    /// Decompresses one or more frames; fails on truncation, corruption, a checksum mismatch, or
    /// output beyond `maxBytes` (refused from the frame header when it declares its size).
    public static func decompress(_ input: UnsafeRawBufferPointer, maxBytes: Int = defaultMaxDecodedBytes) throws -> [UInt8] {
        guard let ctx = ZSTD_createDCtx() else { throw Failure(description: "zstd: cannot create a decompression context") }
        defer { ZSTD_freeDCtx(ctx) }
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { throw Failure(description: "not zstd-compressed data") }
        func overLimit(_ size: String) -> Failure {
            Failure(description: "zstd: decompresses to \(size) bytes, over the limit of \(maxBytes)")
        }
        var output = [UInt8]()
        if declared != ZSTD_CONTENTSIZE_UNKNOWN {
            guard declared <= UInt64(maxBytes) else { throw overLimit("\(declared)") }
            // Only a hint: the frame may still be truncated, so reserve at most 16x the input.
            output.reserveCapacity(min(Int(declared), input.count.multipliedReportingOverflow(by: 16).partialValue))
        }
        let chunk = ZSTD_DStreamOutSize()
        var scratch = [UInt8](repeating: 0, count: chunk)
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            let (result, produced) = scratch.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let r = ZSTD_decompressStream(ctx, &outBuffer, &inBuffer)
                return (r, outBuffer.pos)
            }
            if ZSTD_isError(result) != 0 {
                throw Failure(description: "zstd: \(String(cString: ZSTD_getErrorName(result)))")
            }
            guard produced <= maxBytes - output.count else { throw overLimit("more than \(maxBytes)") }
            output.append(contentsOf: scratch[0 ..< produced])
            // 0 = a frame is complete and flushed; the input may hold another one.
            if result == 0 && inBuffer.pos == inBuffer.size { break }
            // All input taken and nothing more comes out although there was room: the last frame
            // is incomplete, the file was truncated. (zstd may take all the input while output is
            // still pending, so running out of input alone is no end: frames without a declared
            // size stopped after the first buffer that way.)
            if inBuffer.pos == inBuffer.size && produced == 0 {
                throw Failure(description: "zstd: truncated data (incomplete frame)")
            }
        }
        return output
    }
}

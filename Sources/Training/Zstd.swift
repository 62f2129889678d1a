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

    /// Decompresses one or more frames; fails on truncation, corruption or a checksum mismatch.
    public static func decompress(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let ctx = ZSTD_createDCtx() else { throw Failure(description: "zstd: cannot create a decompression context") }
        defer { ZSTD_freeDCtx(ctx) }
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { throw Failure(description: "not zstd-compressed data") }
        var output = [UInt8]()
        if declared != ZSTD_CONTENTSIZE_UNKNOWN { output.reserveCapacity(Int(declared)) }
        let chunk = ZSTD_DStreamOutSize()
        var scratch = [UInt8](repeating: 0, count: chunk)
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var lastResult = 0
        while true {
            let (result, produced) = scratch.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let r = ZSTD_decompressStream(ctx, &outBuffer, &inBuffer)
                return (r, outBuffer.pos)
            }
            if ZSTD_isError(result) != 0 {
                throw Failure(description: "zstd: \(String(cString: ZSTD_getErrorName(result)))")
            }
            output.append(contentsOf: scratch[0 ..< produced])
            lastResult = result
            if inBuffer.pos == inBuffer.size && produced < chunk { break }
        }
        // A non-zero result at the end means the last frame is incomplete: the file was truncated.
        if lastResult != 0 { throw Failure(description: "zstd: truncated data (incomplete frame)") }
        return output
    }
}

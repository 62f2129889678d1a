import CKernels

/// im2col / col2im for CNHW activations.
///
/// col has shape [Cin·kh·kw, N·Hout·Wout]: row (c, i, j) holds, for every output position of every
/// image, the input pixel that kernel tap (i, j) of channel c sees (0 in the padding). A
/// convolution is then one GEMM, `W[Cout, K] · col[K, N·Hout·Wout]`, straight into CNHW output.
public struct ConvGeometry: Equatable, Sendable {
    public var channels, batch, height, width: Int
    public var kernel, stride, padding: Int
    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    public var rows: Int { channels * kernel * kernel }
    public var columns: Int { batch * outHeight * outWidth }
    /// A 1×1, stride-1, unpadded convolution reads its input as the column matrix directly.
    public var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    public init(channels: Int, batch: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int) {
        self.channels = channels; self.batch = batch; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }

    /// The output columns `ow` in [first, end) whose input column ow·stride − padding + j is inside the image.
    @inline(__always)
    func validColumns(tap j: Int) -> (Int, Int) {
        let first = max(0, (padding - j + stride - 1) / stride)
        let end = min(outWidth, (width - 1 + padding - j) / stride + 1)
        return (first, max(first, end))
    }
}

// Column blocks. The full column matrix of a large layer (U-Net's first level: 231 MB) lives in
// main memory: im2col writes it there and the GEMM reads it back. Convolutions therefore work
// on blocks of whole output rows (image n, row oh, flattened as n·Ho + oh) whose columns fit in
// the caches; blocks of small images span several images.

extension ConvGeometry {
    /// Output rows per column block: about 2^18 column floats (1 MB, half of the 2 MB per-core L2
    /// of the Intel Xeon this is tuned on), but at least ~2048 columns so that the GEMMs stay
    /// efficient for wide layers.
    public var blockRows: Int {
        let columns = max(2048, (1 << 18) / max(rows, 1))
        return max(1, min(batch * outHeight, columns / max(outWidth, 1)))
    }
}

/// col[K, rows·Wo] ← the columns of output rows `outputRows` (see `blockRows`).
public func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outputRows: Range<Int>) {
    let (ho, wo, k, s, p) = (g.outHeight, g.outWidth, g.kernel, g.stride, g.padding)
    let (height, width, batch, plane) = (g.height, g.width, g.batch, g.height * g.width)
    let columns = outputRows.count * wo
    Parallel.chunks(g.rows, work: g.rows * columns) { start, end in
        for row in start ..< end {
            let c = row / (k * k), i = (row / k) % k, j = row % k
            let (first, last) = g.validColumns(tap: j)
            var dst = col + row * columns
            for r in outputRows {
                let n = r / ho, oh = r - n * ho
                let ih = oh * s - p + i
                if ih < 0 || ih >= height || first >= last {
                    dst.update(repeating: 0, count: wo)
                } else {
                    let srcRow = x + (c * batch + n) * plane + ih * width - p + j
                    if first > 0 { dst.update(repeating: 0, count: first) }
                    if s == 1 {
                        (dst + first).update(from: srcRow + first, count: last - first)
                    } else if s == 2 {
                        // ResNet's and facenet's stride-2 layers: vectorised in C (Swift's SSE2 stays scalar).
                        fkp_gather_even(srcRow + 2 * first, dst + first, last - first)
                    } else {
                        for ow in first ..< last { dst[ow] = srcRow[ow * s] }
                    }
                    if last < wo { (dst + last).update(repeating: 0, count: wo - last) }
                }
                dst += wo
            }
        }
    }
}

/// dx += the adjoint of `im2col(_:_:_:outputRows:)`: col[K, rows·Wo] summed onto the input pixels.
public func col2imAdd(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outputRows: Range<Int>) {
    let (ho, wo, k, s, p) = (g.outHeight, g.outWidth, g.kernel, g.stride, g.padding)
    let (height, width, batch, plane) = (g.height, g.width, g.batch, g.height * g.width)
    let columns = outputRows.count * wo
    // Each channel's taps write only that channel's planes: split by channel, no races.
    Parallel.chunks(g.channels, work: g.rows * columns) { start, end in
        for c in start ..< end {
            for i in 0 ..< k {
                for j in 0 ..< k {
                    let (first, last) = g.validColumns(tap: j)
                    if first >= last { continue }
                    var src = col + ((c * k + i) * k + j) * columns
                    for r in outputRows {
                        let n = r / ho, oh = r - n * ho
                        let ih = oh * s - p + i
                        if ih >= 0 && ih < height {
                            let dstRow = dx + (c * batch + n) * plane + ih * width - p + j
                            if s == 1 {
                                for ow in first ..< last { dstRow[ow] += src[ow] }
                            } else if s == 2 {
                                fkp_scatter_add_even(src + first, dstRow + 2 * first, last - first)
                            } else {
                                for ow in first ..< last { dstRow[ow * s] += src[ow] }
                            }
                        }
                        src += wo
                    }
                }
            }
        }
    }
}

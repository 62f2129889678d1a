/// The slow reference: convolution and transposed convolution written as the textbook loops, on
/// plain NCHW arrays, with no im2col, GEMM, blocking or threads. It shares no code with the fast
/// layers (Conv2d, ConvTranspose2d), so it is the independent answer the tests, fuzzers and any
/// new kernel compare against (llm.c keeps its naive CPU forward beside the kernels for the same
/// reason). Never call it on a training path: it is orders of magnitude slower.
public enum Reference {
    /// The shapes of one convolution: input [n, inChannels, height, width], weight
    /// Conv2d: [outChannels, inChannels, k, k]; ConvTranspose2d: [inChannels, outChannels, k, k].
    public struct ConvShape: Sendable {
        public var n, inChannels, height, width, outChannels, kernel, stride, padding: Int

        public init(n: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int) {
            self.n = n; self.inChannels = inChannels; self.height = height; self.width = width
            self.outChannels = outChannels; self.kernel = kernel; self.stride = stride; self.padding = padding
        }

        /// Conv2d's output size.
        public var convOutput: (height: Int, width: Int) {
            ((height + 2 * padding - kernel) / stride + 1, (width + 2 * padding - kernel) / stride + 1)
        }

        /// ConvTranspose2d's output size.
        public var transposedOutput: (height: Int, width: Int) {
            ((height - 1) * stride - 2 * padding + kernel, (width - 1) * stride - 2 * padding + kernel)
        }
    }

    /// Visits every (input element, weight element, output element) triple of a Conv2d: y[b, o, oh, ow]
    /// += x[b, c, oh·s − p + i, ow·s − p + j] · W[o, c, i, j]. Indices are flat NCHW / OIHW.
    private static func convTriples(_ s: ConvShape, _ body: (_ x: Int, _ w: Int, _ y: Int) -> Void) {
        let (ho, wo) = s.convOutput, k = s.kernel
        for b in 0 ..< s.n { for o in 0 ..< s.outChannels { for oh in 0 ..< ho { for ow in 0 ..< wo {
            let yi = ((b * s.outChannels + o) * ho + oh) * wo + ow
            for c in 0 ..< s.inChannels { for i in 0 ..< k { for j in 0 ..< k {
                let ih = oh * s.stride - s.padding + i, iw = ow * s.stride - s.padding + j
                guard ih >= 0 && ih < s.height && iw >= 0 && iw < s.width else { continue }
                body(((b * s.inChannels + c) * s.height + ih) * s.width + iw, ((o * s.inChannels + c) * k + i) * k + j, yi)
            }}}
        }}}}
    }

    /// The same for a ConvTranspose2d (the scatter form): y[b, o, ih·s − p + i, iw·s − p + j]
    /// += x[b, c, ih, iw] · W[c, o, i, j].
    private static func transposedTriples(_ s: ConvShape, _ body: (_ x: Int, _ w: Int, _ y: Int) -> Void) {
        let (ho, wo) = s.transposedOutput, k = s.kernel
        for b in 0 ..< s.n { for c in 0 ..< s.inChannels { for ih in 0 ..< s.height { for iw in 0 ..< s.width {
            let xi = ((b * s.inChannels + c) * s.height + ih) * s.width + iw
            for o in 0 ..< s.outChannels { for i in 0 ..< k { for j in 0 ..< k {
                let oh = ih * s.stride - s.padding + i, ow = iw * s.stride - s.padding + j
                guard oh >= 0 && oh < ho && ow >= 0 && ow < wo else { continue }
                body(xi, ((c * s.outChannels + o) * k + i) * k + j, ((b * s.outChannels + o) * ho + oh) * wo + ow)
            }}}
        }}}}
    }

    /// Output [n, outChannels, oh, ow] filled with each channel's bias (or zeros).
    private static func biased(_ bias: [Float]?, n: Int, channels: Int, plane: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n * channels * plane)
        if let bias { for b in 0 ..< n { for o in 0 ..< channels { for i in 0 ..< plane { y[(b * channels + o) * plane + i] = bias[o] } } } }
        return y
    }

    /// (dx, dW, db) of a linear map given by its triples: dx[x] += dy[y]·W[w], dW[w] += dy[y]·x[x],
    /// db[o] = Σ dy over everything but the channel.
    private static func gradients(_ x: [Float], _ weight: [Float], _ dy: [Float], n: Int, outChannels: Int,
                                  triples: ((Int, Int, Int) -> Void) -> Void) -> (dx: [Float], dWeight: [Float], dBias: [Float]) {
        var dx = [Float](repeating: 0, count: x.count), dW = [Float](repeating: 0, count: weight.count)
        triples { xi, wi, yi in
            dx[xi] += dy[yi] * weight[wi]
            dW[wi] += dy[yi] * x[xi]
        }
        let plane = dy.count / max(1, n * outChannels)
        var db = [Float](repeating: 0, count: outChannels)
        for b in 0 ..< n { for o in 0 ..< outChannels { for i in 0 ..< plane { db[o] += dy[(b * outChannels + o) * plane + i] } } }
        return (dx, dW, db)
    }

    // x: [n, inC, h, w] NCHW, weight: [outC, inC, k, k] → y: [n, outC, oh, ow] NCHW
    public static func conv2dForward(_ x: [Float], weight: [Float], bias: [Float]?, _ s: ConvShape) -> [Float] {
        let (ho, wo) = s.convOutput
        var y = biased(bias, n: s.n, channels: s.outChannels, plane: ho * wo)
        convTriples(s) { xi, wi, yi in y[yi] += x[xi] * weight[wi] }
        return y
    }

    // dy: [n, outC, oh, ow] NCHW → dx (shape of x), dWeight (shape of weight), dBias [outC]
    public static func conv2dBackward(_ x: [Float], weight: [Float], dy: [Float], _ s: ConvShape)
        -> (dx: [Float], dWeight: [Float], dBias: [Float]) {
        gradients(x, weight, dy, n: s.n, outChannels: s.outChannels) { convTriples(s, $0) }
    }

    // x: [n, inC, h, w] NCHW, weight: [inC, outC, k, k] → y: [n, outC, (h−1)s−2p+k, (w−1)s−2p+k] NCHW
    public static func convTranspose2dForward(_ x: [Float], weight: [Float], bias: [Float]?, _ s: ConvShape) -> [Float] {
        let (ho, wo) = s.transposedOutput
        var y = biased(bias, n: s.n, channels: s.outChannels, plane: ho * wo)
        transposedTriples(s) { xi, wi, yi in y[yi] += x[xi] * weight[wi] }
        return y
    }

    // dy: [n, outC, oh, ow] NCHW → dx (shape of x), dWeight (shape of weight), dBias [outC]
    public static func convTranspose2dBackward(_ x: [Float], weight: [Float], dy: [Float], _ s: ConvShape)
        -> (dx: [Float], dWeight: [Float], dBias: [Float]) {
        gradients(x, weight, dy, n: s.n, outChannels: s.outChannels) { transposedTriples(s, $0) }
    }
}

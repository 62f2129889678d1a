import CKernels

/// Direct 3×3 convolution with stride 2 (unpadded; see `applies`), on parity planes: each input plane x̂
/// (x with its padding) is split once into its four (row, column) parity planes
/// P_uv[r][s] = x̂[2r + u][2s + v], so output (i, j)'s tap (a, b) reads P_{a%2, b%2}[i + a/2][j + b/2]:
/// a fixed offset per tap into the four planes, laid out one after the other. The register-tiled
/// kernels of DirectConv3x3 then run with that tap table (CKernels' fkp_conv_taps_*), with no
/// column matrix: facenet's 1→16 and 16→16 layers spent 68 % of its step in im2col + GEMM.
///
///   forward:          grid[o] = Σ_c Σ_t P[c](q + tapₜ) · W[o, c, t]
///   weight gradient:  dW[o, c, t] += Σ_n Σ_q dy[o](q) · P[c](q + tapₜ)
///   input gradient:   dP_uv[c](r, s) = Σ_o Σ_{(a, b): a%2 = u, b%2 = v} dy[o](r − a/2, s − b/2) · W[o, c, a, b]
///                     (four small correlations of 4, 2, 2 and 1 taps), then dx̂[2r + u][2s + v] = dP_uv(r, s)
///
/// All grids have row stride S = Wo + 1. As in DirectConv3x3, every output element is summed by
/// one piece of work in a fixed order, so the bits do not depend on the thread count.
public enum DirectConvStride2 {
    static let block = DirectConv3x3.block, band = DirectConv3x3.band

    /// 3×3, stride 2, unpadded, output channels in whole weight blocks (and input channels too
    /// when the input gradient is wanted), output rows at least 8 wide, up to 64 channels.
    /// Measured: facenet's 16-channel layers gain (docs/PERFORMANCE.md); ResNet-50's 128→128 and
    /// 256→256 layers tied or lost against im2col + GEMM (forward 27 → 38 ms at b8 224²), where
    /// OpenBLAS's GEMMs on 1,152–2,304-deep columns are efficient; the padded layers of the small
    /// ResNets and the MobileNets' stems tied, and their rounding (so their trained weights and the
    /// ONNX check's margin) stays as it was. The layout handles padding 1 as well (`split`).
    public static func applies(_ g: ConvGeometry, outChannels: Int, inputGradient: Bool) -> Bool {
        g.kernel == 3 && g.stride == 2 && g.padding == 0 && outChannels % block == 0
            && (!inputGradient || g.channels % block == 0) && g.outWidth >= 8 && max(g.channels, outChannels) <= 64
    }

    struct Layout {
        let rowStride: Int     // S = Wo + 1
        let rows: Int          // R = Ho + 1 rows per parity plane
        let parity: Int        // floats per parity plane: R·S + slack
        let outputGrid: Int    // Ho·S rounded up to whole chunks
        let parityGrid: Int    // R·S, likewise (one input-gradient parity grid)
        let borderedDy: Int    // dy with a zero row above and column left: (Ho + 2)·S + slack
        let g: ConvGeometry

        init(_ g: ConvGeometry) {
            self.g = g
            rowStride = g.outWidth + 1; rows = g.outHeight + 1
            func chunks(_ n: Int) -> Int { (n + DirectConv3x3.chunk - 1) / DirectConv3x3.chunk * DirectConv3x3.chunk }
            parity = rows * rowStride + Int(FKP_CONV3X3_SLACK)
            outputGrid = chunks(g.outHeight * rowStride); parityGrid = chunks(rows * rowStride)
            borderedDy = (g.outHeight + 2) * rowStride + Int(FKP_CONV3X3_SLACK)
        }

        /// Floats of one channel-image's four parity planes.
        var planes: Int { 4 * parity }

        /// Tap t = 3a + b of the window: parity plane (a % 2, b % 2), row a / 2, column b / 2.
        var taps: [Int] { (0 ..< 9).map { t in ((t / 3 % 2) * 2 + t % 3 % 2) * parity + t / 3 / 2 * rowStride + t % 3 / 2 } }
    }

    // x: [Cin, N, H, W] → y: [Cout, N, Ho, Wo] (+ bias, fused ReLU)
    static func forward(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        _ y: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outChannels cout: Int, relu: Bool, workspace: Workspace) {
        let layout = Layout(g), (n, cin) = (g.batch, g.channels)
        let scratch = workspace.floats(forwardScratchFloats(g, outChannels: cout))
        let planes = scratch, grid = planes + cin * n * layout.planes, packed = grid + cout * n * layout.outputGrid
        split(x, planes: cin * n, layout, into: planes)
        DirectConv3x3.pack(w, outChannels: cout, inChannels: cin, flipped: false, into: packed)
        let taps = layout.taps, bands = (layout.outputGrid + band - 1) / band
        Parallel.pool.run(pieces: n * bands * (cout / block)) { piece, _ in
            let ob = piece % (cout / block), b = piece / (cout / block) % bands, image = piece / (cout / block * bands)
            taps.withUnsafeBufferPointer { tap in
                fkp_conv_taps_forward(planes + image * layout.planes, n * layout.planes, Int32(cin),
                                      packed + ob * cin * 9 * block, 9, tap.baseAddress, grid + (ob * block * n + image) * layout.outputGrid,
                                      n * layout.outputGrid, b * band, min(layout.outputGrid, (b + 1) * band))
            }
        }
        DirectConv3x3.unborder(grid, planes: cout * n, height: g.outHeight, width: g.outWidth, gridFloats: layout.outputGrid,
                               rowStride: layout.rowStride, into: y, bias: bias, batch: n, relu: relu)
    }

    /// dy: [Cout, N, Ho, Wo]; dW += ∂/∂W, db += Σ dy (when given), dx = ∂/∂x (when given). With
    /// `reluOutput`, dy is first zeroed where that (fused-ReLU) output is 0.
    static func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, reluOutput: UnsafePointer<Float>?,
                         weight w: UnsafePointer<Float>, weightGradient dW: UnsafeMutablePointer<Float>,
                         biasGradient db: UnsafeMutablePointer<Float>?, inputGradient dx: UnsafeMutablePointer<Float>?,
                         _ g: ConvGeometry, outChannels cout: Int, workspace: Workspace) {
        let layout = Layout(g), (n, cin, s) = (g.batch, g.channels, layout.rowStride)
        let scratch = workspace.floats(backwardScratchFloats(g, outChannels: cout, inputGradient: dx != nil))
        let planes = scratch, borderedDy = planes + cin * n * layout.planes
        let grids = borderedDy + cout * n * layout.borderedDy, packed = grids + cin * n * 4 * layout.parityGrid
        split(x, planes: cin * n, layout, into: planes)
        // dy with a zero row above and a zero column to the left (row stride S = Wo + 1: the left
        // border of the next row is this row's right one), zeros after; masked by a fused ReLU.
        DirectConv3x3.border(dy, planes: cout * n, height: g.outHeight, width: g.outWidth, border: 1, rowStride: s,
                             planeFloats: layout.borderedDy, into: borderedDy, mask: reluOutput)
        if let db {
            Parallel.chunks(cout, work: cout * n * layout.borderedDy) { start, end in
                for o in start ..< end {
                    for image in 0 ..< n { db[o] += sum(borderedDy + (o * n + image) * layout.borderedDy, layout.borderedDy) }
                }
            }
        }
        // dW: pieces are runs of output channels, each summing every band and image in a fixed order.
        let taps = layout.taps, pieces = min(cout / 2, 4 * Parallel.threads), origin = s + 1
        Parallel.pool.run(pieces: pieces) { piece, _ in
            let first = cout * piece / pieces, end = cout * (piece + 1) / pieces
            taps.withUnsafeBufferPointer { tap in
                for q0 in stride(from: 0, to: layout.outputGrid, by: band) {
                    fkp_conv_taps_weight_gradient(borderedDy + first * n * layout.borderedDy + origin, n * layout.borderedDy,
                                                  Int32(end - first), planes, n * layout.planes, Int32(cin), Int32(n),
                                                  layout.planes, layout.borderedDy, dW + first * cin * 9, cin * 9, tap.baseAddress,
                                                  q0, min(layout.outputGrid, q0 + band))
                }
            }
        }
        guard let dx else { return }
        // dx: per parity (u, v), the taps (a, b) with a % 2 = u, b % 2 = v read dy at (r − a/2, s − b/2).
        var classes: [(taps: [Int], windows: [Int], packed: UnsafeMutablePointer<Float>)] = []
        var offset = 0
        for parity in 0 ..< 4 {
            let windows = (0 ..< 9).filter { t in (t / 3 % 2) * 2 + t % 3 % 2 == parity }
            classes.append((windows.map { t in origin - t / 3 / 2 * s - t % 3 / 2 }, windows, packed + offset))
            pack(w, outChannels: cout, inChannels: cin, windows: windows, into: packed + offset)
            offset += cin * cout * windows.count
        }
        let bands = (layout.parityGrid + band - 1) / band
        Parallel.pool.run(pieces: 4 * n * bands * (cin / block)) { piece, _ in
            let cb = piece % (cin / block), b = piece / (cin / block) % bands
            let image = piece / (cin / block * bands) % n, parity = piece / (cin / block * bands * n)
            let k = classes[parity]
            k.taps.withUnsafeBufferPointer { tap in
                fkp_conv_taps_forward(borderedDy + image * layout.borderedDy, n * layout.borderedDy, Int32(cout),
                                      k.packed + cb * cout * k.windows.count * block, Int32(k.windows.count), tap.baseAddress,
                                      grids + ((parity * cin + cb * block) * n + image) * layout.parityGrid,
                                      n * layout.parityGrid, b * band, min(layout.parityGrid, (b + 1) * band))
            }
        }
        // dx[y][x] = dP_uv[r][c] at y + p = 2r + u, x + p = 2c + v: the padded row interleaved, then cropped.
        let (h, wd, p) = (g.height, g.width, g.padding)
        Parallel.chunks(cin * n, work: cin * n * h * wd) { start, end in
            let padded = UnsafeMutablePointer<Float>.allocate(capacity: 2 * s)
            defer { padded.deallocate() }
            for plane in start ..< end {
                for yy in 0 ..< h {
                    let (r, u) = ((yy + p) / 2, (yy + p) % 2)
                    let even = grids + ((2 * u) * cin * n + plane) * layout.parityGrid + r * s
                    fkp_interleave(even, even + cin * n * layout.parityGrid, padded, s)
                    (dx + (plane * h + yy) * wd).update(from: padded + p, count: wd)
                }
            }
        }
    }

    /// Forward's workspace: the parity planes [Cin, N], the output grids [Cout, N] and the packed weights.
    static func forwardScratchFloats(_ g: ConvGeometry, outChannels cout: Int) -> Int {
        let layout = Layout(g)
        return g.channels * g.batch * layout.planes + cout * g.batch * layout.outputGrid + cout * g.channels * 9
    }

    /// Backward's workspace: the parity planes [Cin, N], bordered dy [Cout, N] and, for the input
    /// gradient, four parity grids [Cin, N] and the weights packed per parity (9 taps in all).
    static func backwardScratchFloats(_ g: ConvGeometry, outChannels cout: Int, inputGradient: Bool) -> Int {
        let layout = Layout(g), (n, cin) = (g.batch, g.channels)
        return cin * n * layout.planes + cout * n * layout.borderedDy
            + (inputGradient ? cin * n * 4 * layout.parityGrid + cout * cin * 9 : 0)
    }

    /// The four parity planes of each padded input plane, zero beyond the image.
    private static func split(_ x: UnsafePointer<Float>, planes count: Int, _ layout: Layout,
                              into dst: UnsafeMutablePointer<Float>) {
        let (h, w, p, s) = (layout.g.height, layout.g.width, layout.g.padding, layout.rowStride)
        Parallel.chunks(count, work: count * layout.planes) { start, end in
            // One padded row: p zeros, the row, zeros to 2S + 2.
            let row = UnsafeMutablePointer<Float>.allocate(capacity: 2 * s + 2)
            defer { row.deallocate() }
            for plane in start ..< end {
                let d = dst + plane * layout.planes
                for u in 0 ..< 2 {
                    for r in 0 ..< layout.rows {
                        let image = 2 * r + u - p
                        let even = d + (2 * u) * layout.parity + r * s, odd = d + (2 * u + 1) * layout.parity + r * s
                        guard image >= 0 && image < h else {
                            even.update(repeating: 0, count: s); odd.update(repeating: 0, count: s); continue
                        }
                        row.update(repeating: 0, count: 2 * s + 2)
                        (row + p).update(from: x + (plane * h + image) * w, count: w)
                        fkp_gather_even(row, even, s)
                        fkp_gather_even(row + 1, odd, s)
                    }
                }
                for q in 0 ..< 4 { (d + q * layout.parity + layout.rows * s).update(repeating: 0, count: layout.parity - layout.rows * s) }
            }
        }
    }

    /// The input gradient's weights for one parity: packed[c / B][o][k][c % B] = W[o, c, windows[k]].
    private static func pack(_ w: UnsafePointer<Float>, outChannels: Int, inChannels: Int, windows: [Int],
                             into packed: UnsafeMutablePointer<Float>) {
        let count = windows.count
        for o in 0 ..< outChannels {
            for c in 0 ..< inChannels {
                for (k, t) in windows.enumerated() {
                    packed[((c / block * outChannels + o) * count + k) * block + c % block] = w[(o * inChannels + c) * 9 + t]
                }
            }
        }
    }
}

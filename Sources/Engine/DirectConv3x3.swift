import CKernels

/// Direct 3×3 convolution (stride 1, padding 1 or 0) for the wide, shallow layers where im2col +
/// GEMM is weak: with 16–64 channels the column matrix (9× the input) is written, then packed
/// again by OpenBLAS, and both cost as much as the multiply. Here each plane is copied once into a
/// zero-bordered "flat" plane (see CKernels.h) and the kernels read it in place. Every flat plane
/// has row stride S = W + 2: with padding 1 the input gets a border of 1 and dy (for the input
/// gradient, a full correlation) a border of 1; unpadded, the input gets no border (two zero
/// columns on the right) and dy a border of 2, so the same kernels serve both.
///
///   forward:          grid[o] = Σ_c x̂[c] ⋆ W[o, c]              (x̂: bordered input)
///   input gradient:   grid[c] = Σ_o d̂y[o] ⋆ rot180(W[o, c])     (the same kernel, weights flipped)
///   weight gradient:  dW[o, c, t] += Σ_n Σ_q dy[o](q) · x̂[c](q + tapₜ)
///
/// Every output element is summed by one piece of work in a fixed order, so the bits do not
/// depend on the thread count (they do depend on the instruction set, as OpenBLAS's do).
public enum DirectConv3x3 {
    static let block = Int(FKP_CONV3X3_BLOCK)
    static let chunk = Int(FKP_CONV3X3_CHUNK)
    /// The kernels' instruction set on this CPU: "avx512", "avx2" or "generic".
    public static var instructionSet: String { String(cString: fkp_kernels_isa()) }
    /// Runs the kernels of `name` ("avx512", "avx2", "generic") from now on; false when this CPU
    /// cannot. For tests: every version this CPU can run is checked against the reference.
    @discardableResult
    public static func useInstructionSet(_ name: String) -> Bool { fkp_kernels_use(name) != 0 }
    /// Output positions per piece of work (a fixed band, so the pieces follow the shape alone).
    static let band = 32 * chunk

    /// Whether a convolution runs here: 3×3, stride 1, padding 1 or 0, channels in whole weight
    /// blocks, and planes wide enough that the junk columns (2 per row, 4 unpadded) cost little.
    /// Measured per layer shape against im2col + GEMM on 1 and 2 threads (U-Net and ResNet shapes,
    /// 16–512 channels, 6²–224²): 1.2–2.5× faster forward and backward up to 256 channels from 8²
    /// up; at 512 channels or 6² planes im2col + GEMM is as fast or faster. Unpadded: facenet's
    /// 16→32 and 32→32 layers (39×29 and 37×27 planes), see docs/PERFORMANCE.md.
    public static func applies(_ g: ConvGeometry, outChannels: Int) -> Bool {
        g.kernel == 3 && g.stride == 1 && (g.padding == 1 || g.padding == 0) && g.channels % block == 0
            && outChannels % block == 0 && g.width >= 8 && max(g.channels, outChannels) <= 256
    }

    /// Sizes of the flat planes of one geometry (padding p; output Ho × Wo = H + 2p − 2 × W + 2p − 2).
    struct Layout {
        let rowStride: Int      // S = W + 2
        let bordered: Int       // floats per flat plane, input or dy: (H + 2)·S + slack (enough for both)
        let outputGrid: Int     // floats per output-grid plane: Ho·S rounded up to whole chunks
        let inputGrid: Int      // floats per input-gradient grid plane: H·S, likewise
        let inputBorder: Int    // p
        let gradientBorder: Int // 2 − p: dy's border for the full correlation that gives dx

        init(_ g: ConvGeometry) {
            inputBorder = g.padding; gradientBorder = 2 - g.padding
            rowStride = g.width + 2
            bordered = (g.height + 2) * rowStride + Int(FKP_CONV3X3_SLACK)
            func chunks(_ n: Int) -> Int { (n + DirectConv3x3.chunk - 1) / DirectConv3x3.chunk * DirectConv3x3.chunk }
            outputGrid = chunks(g.outHeight * rowStride); inputGrid = chunks(g.height * rowStride)
        }

        /// Where dy's output grid (q = i·S + j) starts inside its bordered plane.
        var gradientOrigin: Int { gradientBorder * rowStride + gradientBorder }
    }

    // x: [Cin, N, H, W] → y: [Cout, N, H, W] (+ bias, fused ReLU)
    static func forward(_ x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        _ y: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outChannels: Int, relu: Bool, workspace: Workspace) {
        let layout = Layout(g), n = g.batch, cin = g.channels
        let scratch = workspace.floats(forwardScratchFloats(g, outChannels: outChannels))
        let bordered = scratch, grid = bordered + cin * n * layout.bordered
        let packed = grid + outChannels * n * layout.outputGrid
        border(x, planes: cin * n, height: g.height, width: g.width, border: layout.inputBorder, rowStride: layout.rowStride,
               planeFloats: layout.bordered, into: bordered)
        pack(w, outChannels: outChannels, inChannels: cin, flipped: false, into: packed)
        convolve(bordered, channels: cin, packed, outChannels: outChannels, into: grid, gridFloats: layout.outputGrid, layout, batch: n)
        unborder(grid, planes: outChannels * n, height: g.outHeight, width: g.outWidth, gridFloats: layout.outputGrid,
                 rowStride: layout.rowStride,
                 into: y, bias: bias, batch: n, relu: relu)
    }

    /// dy: [Cout, N, H, W]; dW += ∂/∂W, db += Σ dy (when given), dx = ∂/∂x (when given). With
    /// `reluOutput`, dy is first zeroed where that (fused-ReLU) output is 0.
    static func backward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, reluOutput: UnsafePointer<Float>?,
                         weight w: UnsafePointer<Float>, weightGradient dW: UnsafeMutablePointer<Float>,
                         biasGradient db: UnsafeMutablePointer<Float>?, inputGradient dx: UnsafeMutablePointer<Float>?,
                         _ g: ConvGeometry, outChannels: Int, workspace: Workspace) {
        let layout = Layout(g), n = g.batch, cin = g.channels
        let gridFloats = dx == nil ? 0 : cin * n * layout.inputGrid
        let scratch = workspace.floats(backwardScratchFloats(g, outChannels: outChannels, inputGradient: dx != nil))
        let borderedX = scratch, borderedDy = borderedX + cin * n * layout.bordered
        let grid = borderedDy + outChannels * n * layout.bordered, packed = grid + gridFloats
        border(x, planes: cin * n, height: g.height, width: g.width, border: layout.inputBorder, rowStride: layout.rowStride,
               planeFloats: layout.bordered, into: borderedX)
        border(dy, planes: outChannels * n, height: g.outHeight, width: g.outWidth, border: layout.gradientBorder,
               rowStride: layout.rowStride, planeFloats: layout.bordered, into: borderedDy, mask: reluOutput)
        if let db {
            Parallel.chunks(outChannels, work: outChannels * n * layout.bordered) { start, end in
                for o in start ..< end {
                    for image in 0 ..< n { db[o] += sum(borderedDy + (o * n + image) * layout.bordered, layout.bordered) }
                }
            }
        }
        weightGradient(borderedDy, borderedX, into: dW, layout, inChannels: cin, outChannels: outChannels, batch: n)
        guard let dx else { return }
        pack(w, outChannels: outChannels, inChannels: cin, flipped: true, into: packed)
        convolve(borderedDy, channels: outChannels, packed, outChannels: cin, into: grid, gridFloats: layout.inputGrid, layout, batch: n)
        unborder(grid, planes: cin * n, height: g.height, width: g.width, gridFloats: layout.inputGrid, rowStride: layout.rowStride,
                 into: dx, bias: nil, batch: n, relu: false)
    }

    /// Forward's workspace: the bordered input planes [Cin, N], the output-grid planes [Cout, N]
    /// and the packed weights (also `Conv2d.planMemory`'s figure).
    static func forwardScratchFloats(_ g: ConvGeometry, outChannels: Int) -> Int {
        let layout = Layout(g)
        return g.channels * g.batch * layout.bordered + outChannels * g.batch * layout.outputGrid + outChannels * g.channels * 9
    }

    /// Backward's workspace: bordered x [Cin, N] and dy [Cout, N], the input gradient's grid planes
    /// [Cin, N] (when it is wanted) and the packed flipped weights.
    static func backwardScratchFloats(_ g: ConvGeometry, outChannels: Int, inputGradient: Bool) -> Int {
        let layout = Layout(g), (n, cin) = (g.batch, g.channels)
        return (cin + outChannels) * n * layout.bordered + (inputGradient ? cin * n * layout.inputGrid : 0) + outChannels * cin * 9
    }

    /// output-grid planes [Cout, N] = bordered input planes [Cin, N] ⋆ the packed weights. A piece
    /// is one band of one image for a run of output blocks, so the band's input is read from memory
    /// once and then from cache for every block; how the blocks are grouped changes no sum.
    private static func convolve(_ input: UnsafePointer<Float>, channels: Int, _ packed: UnsafePointer<Float>, outChannels: Int,
                                 into output: UnsafeMutablePointer<Float>, gridFloats grid: Int, _ layout: Layout, batch n: Int) {
        let bands = (grid + band - 1) / band, blocks = outChannels / block
        let groups = min(blocks, max(1, (4 * Parallel.threads + n * bands - 1) / (n * bands)))
        Parallel.pool.run(pieces: n * bands * groups) { piece, _ in
            let group = piece % groups, b = piece / groups % bands, image = piece / (groups * bands)
            for ob in blocks * group / groups ..< blocks * (group + 1) / groups {
                fkp_conv3x3_forward(input + image * layout.bordered, n * layout.bordered, Int32(channels),
                                    packed + ob * channels * 9 * block, output + (ob * block * n + image) * grid,
                                    n * grid, layout.rowStride, b * band, min(grid, (b + 1) * band))
            }
        }
    }

    /// dW[o, c, t] += Σ over bands of (Σ over images and positions). Pieces are runs of output channels:
    /// how many does not change any sum.
    private static func weightGradient(_ borderedDy: UnsafePointer<Float>, _ borderedX: UnsafePointer<Float>,
                                       into dW: UnsafeMutablePointer<Float>, _ layout: Layout,
                                       inChannels cin: Int, outChannels: Int, batch n: Int) {
        let pieces = min(outChannels / 2, 4 * Parallel.threads)
        let (origin, grid) = (layout.gradientOrigin, layout.outputGrid)   // dy's grid inside its bordered plane
        Parallel.pool.run(pieces: pieces) { piece, _ in
            let first = outChannels * piece / pieces, end = outChannels * (piece + 1) / pieces
            for q0 in stride(from: 0, to: grid, by: band) {
                fkp_conv3x3_weight_gradient(borderedDy + first * n * layout.bordered + origin, n * layout.bordered,
                                            Int32(end - first), borderedX, n * layout.bordered, Int32(cin),
                                            Int32(n), layout.bordered, dW + first * cin * 9, cin * 9, layout.rowStride,
                                            q0, min(grid, q0 + band))
            }
        }
    }

    /// packed[o / B][c][t][o % B] = W[o, c, t] (or, `flipped`, the input-gradient weights
    /// W'[c, o, t] = W[o, c, 8 − t] with the roles of c and o swapped).
    static func pack(_ w: UnsafePointer<Float>, outChannels: Int, inChannels: Int, flipped: Bool,
                             into packed: UnsafeMutablePointer<Float>) {
        for o in 0 ..< outChannels {
            for c in 0 ..< inChannels {
                for t in 0 ..< 9 {
                    let value = w[(o * inChannels + c) * 9 + t]
                    if flipped {
                        packed[((c / block * outChannels + o) * 9 + 8 - t) * block + c % block] = value
                    } else {
                        packed[((o / block * inChannels + c) * 9 + t) * block + o % block] = value
                    }
                }
            }
        }
    }

    /// Flat copies of height×width planes with a zero border of `border` above and to the left
    /// (row stride S, zeros everywhere else); with `mask`, elements where mask ≤ 0 become 0.
    static func border(_ src: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int, border: Int,
                       rowStride s: Int, planeFloats: Int, into dst: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>? = nil) {
        let first = border * s + border
        Parallel.chunks(planes, work: planes * planeFloats) { start, end in
            for p in start ..< end {
                let d = dst + p * planeFloats
                d.update(repeating: 0, count: first)
                for i in 0 ..< h {
                    let row = d + first + i * s, from = src + p * h * w + i * w
                    if let mask {
                        let m = mask + p * h * w + i * w
                        for j in 0 ..< w { let v = from[j]; row[j] = m[j] > 0 ? v : 0 }
                    } else {
                        row.update(from: from, count: w)
                    }
                    (row + w).update(repeating: 0, count: s - w)   // this row's right and the next row's left border
                }
                (d + first + h * s).update(repeating: 0, count: planeFloats - first - h * s)
            }
        }
    }

    /// height×width planes from grid planes of `gridFloats` (dropping the junk columns), + bias[plane / N], ReLU.
    static func unborder(_ grid: UnsafePointer<Float>, planes: Int, height h: Int, width w: Int, gridFloats: Int,
                         rowStride s: Int, into dst: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                         batch n: Int, relu: Bool) {
        Parallel.chunks(planes, work: planes * h * w) { start, end in
            for p in start ..< end {
                let b = bias?[p / n] ?? 0
                for i in 0 ..< h {
                    let from = grid + p * gridFloats + i * s, row = dst + p * h * w + i * w
                    if relu {
                        for j in 0 ..< w { row[j] = max(from[j] + b, 0) }
                    } else if bias != nil {
                        for j in 0 ..< w { row[j] = from[j] + b }
                    } else {
                        row.update(from: from, count: w)
                    }
                }
            }
        }
    }
}

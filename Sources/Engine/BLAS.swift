import COpenBLAS

/// Row-major single-precision GEMM through OpenBLAS:
/// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C.
///
/// Large products are cut into a grid of output tiles fixed by the shape alone (`GEMMTiles`) and the
/// tiles run on the engine's pool, one single-threaded OpenBLAS call each. OpenBLAS's kernels round
/// an element differently depending on where it sits in the call (edge kernels), so a split that
/// followed the thread count would change the bits with it; a shape-fixed grid gives the same bits
/// for any thread count.
///
/// `tileDone(rows, columns)`, when given, runs on each finished tile of C on the thread that made
/// it, while the tile is in that core's cache (a convolution's inference epilogue).
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
          c: c, ldc: ldc, tileDone: nil)
}

public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                  tileDone: ((_ rows: Range<Int>, _ columns: Range<Int>) -> Void)?) {
    let tiles = GEMMTiles(m: m, n: n, k: k)
    if tiles.count == 1 {
        sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c, ldc: ldc)
        tileDone?(0 ..< m, 0 ..< n)
        return
    }
    Parallel.pool.run(pieces: tiles.count) { tile, _ in
        let (rows, cols) = tiles[tile]
        // Row block of op(A): rows of A, or columns when transposed; column block of op(B) likewise.
        let aTile = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
        let bTile = transB ? b + cols.lowerBound * ldb : b + cols.lowerBound
        sgemmSerial(transA: transA, transB: transB, m: rows.count, n: cols.count, k: k, alpha: alpha,
                    a: aTile, lda: lda, b: bTile, ldb: ldb, beta: beta,
                    c: c + rows.lowerBound * ldc + cols.lowerBound, ldc: ldc)
        tileDone?(rows, cols)
    }
}

/// A GEMM as a value (`sgemm` tiled over the pool, or `sgemmSerial`), arguments in `sgemm`'s order.
typealias GEMM = (_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                  _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                  _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) -> Void

/// One OpenBLAS call on the calling thread.
@inline(__always)
public func sgemmSerial(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The output tiles of a GEMM, from its shape only: about one tile per `tileWork` FLOPs (at most
/// `maxTiles`), columns cut first (pieces of at least 64), then rows (at least 32), sizes rounded up
/// to multiples of 16 (OpenBLAS's micro-kernel widths). Many tiles per thread keep the threads
/// evenly loaded when they take tiles in turn. On one thread a tiled GEMM costs OpenBLAS a repack
/// of one operand per tile: under 1 % of the arithmetic at these sizes.
public struct GEMMTiles {
    public static let tileWork = 2 << 20, maxTiles = 64
    public let rowTile, columnTile, rowTiles, columnTiles, m, n: Int
    public var count: Int { rowTiles * columnTiles }

    public init(m: Int, n: Int, k: Int) {
        self.m = m; self.n = n
        let wanted = min(Self.maxTiles, 2 * m * n * k / Self.tileWork)
        let columnPieces = max(1, min(wanted, n / 64))
        let rowPieces = max(1, min(wanted / columnPieces, m / 32))
        func size(_ total: Int, _ pieces: Int) -> Int { max(1, ((total + pieces - 1) / pieces + 15) / 16 * 16) }
        rowTile = size(m, rowPieces)
        columnTile = size(n, columnPieces)
        rowTiles = (m + rowTile - 1) / rowTile
        columnTiles = (n + columnTile - 1) / columnTile
    }

    public subscript(_ index: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        let (r, c) = (index / columnTiles, index % columnTiles)
        return (r * rowTile ..< min(m, (r + 1) * rowTile), c * columnTile ..< min(n, (c + 1) * columnTile))
    }
}

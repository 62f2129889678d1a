import COpenBLAS

/// Row-major single-precision GEMM through OpenBLAS:
/// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

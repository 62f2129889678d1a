/// Geometry on grey images: one 2×3 affine transform per sample (crop, resize, augmentation composed
/// once) applied once to the pixels with bilinear sampling, and to the keypoints with the same matrix.
///
/// Coordinates: a keypoint (x, y) is in pixel units with pixel (i, j)'s centre at (i, j).
import CKernels
import Foundation

/// x' = a·x + b·y + c,  y' = d·x + e·y + f.
public struct Affine2D: Sendable, Equatable {
    public var a: Float, b: Float, c: Float
    public var d: Float, e: Float, f: Float

    public init(a: Float, b: Float, c: Float, d: Float, e: Float, f: Float) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.e = e; self.f = f
    }

    public static let identity = Affine2D(a: 1, b: 0, c: 0, d: 0, e: 1, f: 0)
    public static func translation(_ tx: Float, _ ty: Float) -> Affine2D { .init(a: 1, b: 0, c: tx, d: 0, e: 1, f: ty) }
    public static func scale(_ sx: Float, _ sy: Float) -> Affine2D { .init(a: sx, b: 0, c: 0, d: 0, e: sy, f: 0) }
    /// Counter-clockwise on screen (y points down) for positive angles.
    public static func rotation(radians: Float) -> Affine2D {
        let cs = Float(cos(Double(radians))), sn = Float(sin(Double(radians)))
        return .init(a: cs, b: sn, c: 0, d: -sn, e: cs, f: 0)
    }
    /// x' = x + k·y.
    public static func shearX(_ k: Float) -> Affine2D { .init(a: 1, b: k, c: 0, d: 0, e: 1, f: 0) }

    /// The transform that applies `self` first, then `next`.
    public func followed(by next: Affine2D) -> Affine2D {
        Affine2D(a: next.a * a + next.b * d, b: next.a * b + next.b * e, c: next.a * c + next.b * f + next.c,
                 d: next.d * a + next.e * d, e: next.d * b + next.e * e, f: next.d * c + next.e * f + next.f)
    }

    public var determinant: Float { a * e - b * d }

    public func inverted() -> Affine2D {
        let det = determinant
        precondition(det != 0, "Affine2D: singular transform")
        let ia = e / det, ib = -b / det, id = -d / det, ie = a / det
        return Affine2D(a: ia, b: ib, c: -(ia * c + ib * f), d: id, e: ie, f: -(id * c + ie * f))
    }

    @inlinable public func apply(_ x: Float, _ y: Float) -> (x: Float, y: Float) {
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// Maps interleaved x0, y0, x1, y1, ... points.
    public func apply(points: [Float]) -> [Float] {
        var out = points
        for i in stride(from: 0, to: points.count - 1, by: 2) {
            let p = apply(points[i], points[i + 1])
            out[i] = p.x; out[i + 1] = p.y
        }
        return out
    }

    /// The geometric mean scale of the linear part (how much a unit length grows).
    public var meanScale: Float { abs(determinant).squareRoot() }
}

extension GreyImage {
    /// Bilinear value at (x, y); `fill` outside the image (blended smoothly at the border).
    @inlinable public func sample(_ x: Float, _ y: Float, fill: Float = 0) -> Float {
        let x0 = Int(x.rounded(.down)), y0 = Int(y.rounded(.down))
        let fx = x - Float(x0), fy = y - Float(y0)
        @inline(__always) func at(_ i: Int, _ j: Int) -> Float {
            (i >= 0 && i < width && j >= 0 && j < height) ? pixels[j * width + i] : fill
        }
        let top = at(x0, y0) + (at(x0 + 1, y0) - at(x0, y0)) * fx
        let bottom = at(x0, y0 + 1) + (at(x0 + 1, y0 + 1) - at(x0, y0 + 1)) * fx
        return top + (bottom - top) * fy
    }

    /// Averages k×k blocks (box filter): shrinking first keeps a later bilinear warp from aliasing
    /// when it scales down by more than 2×. The last partial blocks average what they have.
    public func shrunk(by k: Int) -> GreyImage {
        precondition(k >= 1)
        if k == 1 { return self }
        let w = (width + k - 1) / k, h = (height + k - 1) / k
        var out = [Float](repeating: 0, count: w * h)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for j in 0..<h {
                    let y0 = j * k, y1 = min(y0 + k, height)
                    for i in 0..<w {
                        let x0 = i * k, x1 = min(x0 + k, width)
                        var sum: Float = 0
                        for y in y0..<y1 { for x in x0..<x1 { sum += src[y * width + x] } }
                        dst[j * w + i] = sum / Float((y1 - y0) * (x1 - x0))
                    }
                }
            }
        }
        return GreyImage(width: w, height: h, pixels: out)
    }

    /// How much `warp` shrinks the source before a transform that scales down by 2× or more.
    static func shrinkFactor(_ transform: Affine2D) -> Int { Int((1 / max(transform.meanScale, 1e-6)).rounded(.down)) }

    /// The transform (pixels of `shrunk(by: k)` → pixels of self): block i's centre is k·i + (k-1)/2.
    public static func shrinkTransform(_ k: Int) -> Affine2D {
        let half = Float(k - 1) / 2
        return Affine2D(a: Float(k), b: 0, c: half, d: 0, e: Float(k), f: half)
    }

    /// Warps this image into `width`×`height` pixels: `transform` maps this image's coordinates to
    /// the output's. Pixels that come from outside the image get `fill`.
    /// With `clampToEdge` the border pixels extend outwards instead (for resizing).
    public func warped(by transform: Affine2D, width outWidth: Int, height outHeight: Int, fill: Float = 0,
                       clampToEdge: Bool = false) -> GreyImage {
        var out = GreyImage(width: outWidth, height: outHeight)
        out.pixels.withUnsafeMutableBufferPointer { dst in
            warp(by: transform, into: dst.baseAddress!, width: outWidth, height: outHeight, fill: fill,
                 clampToEdge: clampToEdge)
        }
        return out
    }

    /// As `warped`, writing into a caller's buffer (the batch), and shrinking the source first when
    /// the transform scales down by 2× or more (antialiasing).
    public func warp(by transform: Affine2D, into dst: UnsafeMutablePointer<Float>, width outWidth: Int,
                     height outHeight: Int, fill: Float = 0, clampToEdge: Bool = false) {
        let factor = GreyImage.shrinkFactor(transform)
        if factor >= 2 {
            let small = shrunk(by: factor)
            small.warpBilinear(by: GreyImage.shrinkTransform(factor).followed(by: transform), into: dst,
                               width: outWidth, height: outHeight, fill: fill, clampToEdge: clampToEdge)
        } else {
            warpBilinear(by: transform, into: dst, width: outWidth, height: outHeight, fill: fill, clampToEdge: clampToEdge)
        }
    }

    func warpBilinear(by transform: Affine2D, into dst: UnsafeMutablePointer<Float>, width outWidth: Int,
                      height outHeight: Int, fill: Float, clampToEdge: Bool) {
        pixels.withUnsafeBufferPointer { src in
            GreyImage.warpBilinear(src.baseAddress!, bytes: false, width: width, height: height, by: transform,
                                   into: dst, width: outWidth, height: outHeight, fill: fill, clampToEdge: clampToEdge)
        }
    }

    /// The hot loop (CKernels' fkp_warp_bilinear, vectorised): inverse-maps each output pixel and
    /// samples bilinearly, from Floats or from bytes read as b / 255 (the loader cache's faces).
    static func warpBilinear(_ src: UnsafeRawPointer, bytes: Bool, width w: Int, height h: Int, by transform: Affine2D,
                             into dst: UnsafeMutablePointer<Float>, width outWidth: Int, height outHeight: Int,
                             fill: Float, clampToEdge: Bool) {
        let inv = transform.inverted()
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 6) { coefficients in
            (coefficients[0], coefficients[1], coefficients[2]) = (inv.a, inv.b, inv.c)
            (coefficients[3], coefficients[4], coefficients[5]) = (inv.d, inv.e, inv.f)
            fkp_warp_bilinear(src, bytes ? 1 : 0, w, h, coefficients.baseAddress!, dst, outWidth, outHeight, fill, clampToEdge ? 1 : 0)
        }
    }

    /// The region (x, y, width, height) of this image, padded with `fill` where it leaves the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int, fill: Float = 0) -> GreyImage {
        var out = GreyImage(width: w, height: h, fill: fill)
        for j in 0..<h where y + j >= 0 && y + j < height {
            for i in 0..<w where x + i >= 0 && x + i < width {
                out.pixels[j * w + i] = pixels[(y + j) * width + x + i]
            }
        }
        return out
    }

    /// Bilinear resize (pixel centres aligned, so the image does not shift); antialiased when shrinking 2× or more.
    public func resized(width w: Int, height h: Int) -> GreyImage {
        warped(by: GreyImage.resizeTransform(fromWidth: width, fromHeight: height, toWidth: w, toHeight: h),
               width: w, height: h, clampToEdge: true)
    }

    /// Maps a fromWidth×fromHeight image's pixel coordinates onto toWidth×toHeight (edges to edges).
    public static func resizeTransform(fromWidth: Int, fromHeight: Int, toWidth: Int, toHeight: Int) -> Affine2D {
        let sx = Float(toWidth) / Float(fromWidth), sy = Float(toHeight) / Float(fromHeight)
        return Affine2D(a: sx, b: 0, c: 0.5 * sx - 0.5, d: 0, e: sy, f: 0.5 * sy - 0.5)
    }
}

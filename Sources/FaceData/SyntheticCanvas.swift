/// An anti-aliased grey rasteriser for the synthetic faces: polygons filled with exact area coverage.
///
/// Every shape (face outline, lids, lips, brows, clutter) is a polygon in pixel coordinates. Coverage is
/// computed the way font rasterisers do it: each edge adds its signed area to an accumulation row, a
/// running sum along the row gives each pixel's covered fraction. That is exact anti-aliasing at the
/// cost of O(perimeter + area), with no supersampling.

/// A point in pixel coordinates (x right, y down; pixel (i, j) covers [i, i+1) x [j, j+1)).
struct SynthPoint {
    var x: Float
    var y: Float
    init(_ x: Float, _ y: Float) { self.x = x; self.y = y }

    static func + (a: SynthPoint, b: SynthPoint) -> SynthPoint { SynthPoint(a.x + b.x, a.y + b.y) }
    static func - (a: SynthPoint, b: SynthPoint) -> SynthPoint { SynthPoint(a.x - b.x, a.y - b.y) }
    static func * (a: SynthPoint, k: Float) -> SynthPoint { SynthPoint(a.x * k, a.y * k) }
    var length: Float { (x * x + y * y).squareRoot() }
}

/// What a fill paints: a grey level lit by an affine light field, plus an optional round bulge
/// (a soft highlight or shadow): v = base * (1 + lx*(x-cx) + ly*(y-cy)) + bulge * max(0, 1 - r^2/R^2).
struct SynthPaint {
    var base: Float
    var lx: Float = 0, ly: Float = 0, cx: Float = 0, cy: Float = 0
    var bulge: Float = 0, bx: Float = 0, by: Float = 0, invR2: Float = 0
    /// Opacity of the whole shape.
    var alpha: Float = 1

    init(_ base: Float, alpha: Float = 1) { self.base = base; self.alpha = alpha }

    /// The same light field as `other`, with a different grey level.
    init(_ base: Float, litLike other: SynthPaint, alpha: Float = 1) {
        self = other
        self.base = base; self.bulge = 0; self.alpha = alpha
    }
}

final class SynthCanvas {
    let width: Int
    let height: Int
    /// The image being drawn, row-major, stride `width`.
    let pixels: UnsafeMutablePointer<Float>
    /// Signed-area accumulation rows, stride `width + 2`; all zero between fills.
    private let accumulator: UnsafeMutablePointer<Float>
    private let stride: Int
    /// Clip mask (coverage of the last `setClip` polygon), stride `width`; zero outside `clipRect`.
    private let clip: UnsafeMutablePointer<Float>
    private var clipRect: (x0: Int, y0: Int, x1: Int, y1: Int)? = nil

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        stride = width + 2
        pixels = .allocate(capacity: width * height)
        pixels.initialize(repeating: 0, count: width * height)
        accumulator = .allocate(capacity: stride * height)
        accumulator.initialize(repeating: 0, count: stride * height)
        clip = .allocate(capacity: width * height)
        clip.initialize(repeating: 0, count: width * height)
    }

    deinit {
        pixels.deallocate()
        accumulator.deallocate()
        clip.deallocate()
    }

    /// Fills `polygon` (closed implicitly, nonzero-ish winding) with `paint`; with `clipped`, only
    /// inside the current clip polygon (e.g. the iris inside the eyelids).
    func fill(_ polygon: [SynthPoint], _ paint: SynthPaint, clipped: Bool = false) {
        guard let rect = accumulate(polygon) else { return }
        let w = width
        for y in rect.y0...rect.y1 {
            let acc = accumulator + y * stride
            let row = pixels + y * w
            let mask = clip + y * w
            let py = Float(y) + 0.5
            var sum: Float = 0
            for x in rect.x0...rect.x1 {
                sum += acc[x]
                acc[x] = 0
                var cover = min(abs(sum), 1) * paint.alpha
                if clipped { cover *= mask[x] }
                if cover > 0 {
                    let px = Float(x) + 0.5
                    let dx = px - paint.cx, dy = py - paint.cy
                    var value = paint.base * (1 + paint.lx * dx + paint.ly * dy)
                    if paint.bulge != 0 {
                        let bx = px - paint.bx, by = py - paint.by
                        value += paint.bulge * max(0, 1 - (bx * bx + by * by) * paint.invR2)
                    }
                    row[x] += (value - row[x]) * cover
                }
            }
            acc[rect.x1 + 1] = 0
        }
    }

    /// Makes `polygon`'s coverage the clip mask for later `fill(..., clipped: true)` calls.
    func setClip(_ polygon: [SynthPoint]) {
        if let old = clipRect {
            for y in old.y0...old.y1 { (clip + y * width + old.x0).update(repeating: 0, count: old.x1 - old.x0 + 1) }
            clipRect = nil
        }
        guard let rect = accumulate(polygon) else { return }
        for y in rect.y0...rect.y1 {
            let acc = accumulator + y * stride
            let mask = clip + y * width
            var sum: Float = 0
            for x in rect.x0...rect.x1 {
                sum += acc[x]
                acc[x] = 0
                mask[x] = min(abs(sum), 1)
            }
            acc[rect.x1 + 1] = 0
        }
        clipRect = rect
    }

    /// Adds every edge's signed area to the accumulator; returns the pixel rectangle to resolve, or
    /// nil when the polygon misses the image.
    private func accumulate(_ polygon: [SynthPoint]) -> (x0: Int, y0: Int, x1: Int, y1: Int)? {
        guard polygon.count >= 3 else { return nil }
        var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
        for p in polygon {
            minX = min(minX, p.x); maxX = max(maxX, p.x); minY = min(minY, p.y); maxY = max(maxY, p.y)
        }
        // NaN-safe rejection: a degenerate shape draws nothing rather than trapping.
        guard maxX > 0, maxY > 0, minX < Float(width), minY < Float(height) else { return nil }
        let x0 = max(0, Int(minX.rounded(.down))), x1 = min(width - 1, Int(maxX.rounded(.down)))
        let y0 = max(0, Int(minY.rounded(.down))), y1 = min(height - 1, Int(maxY.rounded(.down)))
        var previous = polygon[polygon.count - 1]
        for p in polygon {
            addEdge(previous, p)
            previous = p
        }
        return (x0, y0, x1, y1)
    }

    /// One edge, row by row: within a row the edge piece runs from xa to xb over a signed height.
    private func addEdge(_ p: SynthPoint, _ q: SynthPoint) {
        if p.y == q.y { return }
        let (a, b, sign): (SynthPoint, SynthPoint, Float) = p.y < q.y ? (p, q, 1) : (q, p, -1)
        let top = max(a.y, 0), bottom = min(b.y, Float(height))
        guard top < bottom else { return }
        let dxdy = (b.x - a.x) / (b.y - a.y)
        var y = top
        var row = Int(top)
        while y < bottom {
            let next = min(Float(row + 1), bottom)
            let xa = a.x + (y - a.y) * dxdy, xb = a.x + (next - a.y) * dxdy
            addPiece(accumulator + row * stride, xa, xb, sign * (next - y))
            y = next
            row += 1
        }
    }

    /// Splits a piece at pixel boundaries; within pixel i, a sub-piece of height h at mean offset m
    /// covers h*(1-m) of pixel i and the full h of every pixel right of it (carried by acc[i+1]).
    @inline(__always)
    private func addPiece(_ acc: UnsafeMutablePointer<Float>, _ xa: Float, _ xb: Float, _ h: Float) {
        let right = Float(width)
        let lo = min(xa, xb), hi = max(xa, xb)
        if hi <= 0 { acc[0] += h; return }
        if lo >= right { return }
        if hi - lo < 1e-4 {
            let i = Int(lo), m = lo - Float(i)
            acc[i] += h * (1 - m)
            acc[i + 1] += h * m
            return
        }
        let perX = h / (hi - lo)
        var u = lo
        if u < 0 {
            acc[0] += perX * (0 - u)
            u = 0
        }
        while u < hi && u < right {
            let i = Int(u)
            let v = min(hi, Float(i + 1))
            let m = (u + v) * 0.5 - Float(i)
            let part = perX * (v - u)
            acc[i] += part * (1 - m)
            acc[i + 1] += part * m
            u = v
        }
    }

    /// The finished image as an array (values clamped to [0, 1]).
    func image() -> GreyImage {
        var out = [Float](repeating: 0, count: width * height)
        out.withUnsafeMutableBufferPointer { dst in
            for i in 0..<(width * height) { dst[i] = min(max(pixels[i], 0), 1) }
        }
        return GreyImage(width: width, height: height, pixels: out)
    }
}

/// Polygon builders: smooth curves, ellipses and stroked lines, all as point lists.
enum SynthShapes {
    /// Catmull-Rom spline through `points` (open: end tangents mirror the first/last segment),
    /// `steps` samples per segment, ending exactly on the last point.
    static func spline(_ points: [SynthPoint], steps: Int = 6, closed: Bool = false) -> [SynthPoint] {
        let n = points.count
        guard n >= 2 else { return points }
        var out: [SynthPoint] = []
        out.reserveCapacity(n * steps + 1)
        let segments = closed ? n : n - 1
        func at(_ i: Int) -> SynthPoint {
            if closed { return points[(i % n + n) % n] }
            if i < 0 { return points[0] * 2 - points[1] }
            if i >= n { return points[n - 1] * 2 - points[n - 2] }
            return points[i]
        }
        for s in 0..<segments {
            let p0 = at(s - 1), p1 = at(s), p2 = at(s + 1), p3 = at(s + 2)
            for k in 0..<steps {
                let t = Float(k) / Float(steps), t2 = t * t, t3 = t2 * t
                let a = -0.5 * t3 + t2 - 0.5 * t
                let b = 1.5 * t3 - 2.5 * t2 + 1
                let c = -1.5 * t3 + 2 * t2 + 0.5 * t
                let d = 0.5 * t3 - 0.5 * t2
                out.append(SynthPoint(a * p0.x + b * p1.x + c * p2.x + d * p3.x,
                                      a * p0.y + b * p1.y + c * p2.y + d * p3.y))
            }
        }
        if !closed { out.append(points[n - 1]) }
        return out
    }

    static func ellipse(center: SynthPoint, rx: Float, ry: Float, angle: Float = 0, sides: Int = 28) -> [SynthPoint] {
        let (s, c) = DeterministicTrig.sinCos(angle)
        var out: [SynthPoint] = []
        out.reserveCapacity(sides)
        for k in 0..<sides {
            let (sk, ck) = DeterministicTrig.sinCos(Float(k) * (2 * Float.pi / Float(sides)))
            let ex = rx * ck, ey = ry * sk
            out.append(SynthPoint(center.x + c * ex - s * ey, center.y + s * ex + c * ey))
        }
        return out
    }

    /// A ribbon of width `width` along `line`, tapering from `startScale` to `endScale` of it,
    /// shaped so the middle is widest when `bulge` > 0 (brows, lid creases).
    static func stroke(_ line: [SynthPoint], width: Float, startScale: Float = 1, endScale: Float = 1,
                       bulge: Float = 0) -> [SynthPoint] {
        let n = line.count
        guard n >= 2 else { return [] }
        var left: [SynthPoint] = [], right: [SynthPoint] = []
        left.reserveCapacity(n); right.reserveCapacity(n)
        for i in 0..<n {
            let prev = line[max(i - 1, 0)], next = line[min(i + 1, n - 1)]
            let d = next - prev
            let len = max(d.length, 1e-6)
            let normal = SynthPoint(-d.y / len, d.x / len)
            let t = Float(i) / Float(n - 1)
            let hump = 4 * t * (1 - t)
            let half = 0.5 * width * (startScale + (endScale - startScale) * t) * (1 + bulge * hump)
            left.append(line[i] + normal * half)
            right.append(line[i] - normal * half)
        }
        return left + right.reversed()
    }

    static func quad(_ a: SynthPoint, _ b: SynthPoint, _ c: SynthPoint, _ d: SynthPoint) -> [SynthPoint] { [a, b, c, d] }
}

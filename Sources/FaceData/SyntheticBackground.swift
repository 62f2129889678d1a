/// Backgrounds and camera effects for the synthetic faces: textured clutter behind the face, and the
/// lighting, blur and sensor noise applied to the finished picture.
///
/// Clutter matters: with a flat background a model could find the face by thresholding; edges,
/// blobs and stripes of every grey level force it to use the face's internal structure.

enum SynthBackground {
    /// Fills the canvas with smooth value noise, optional stripes, then random shapes.
    static func paint(_ canvas: SynthCanvas, _ rng: inout SplitMix64) {
        let size = canvas.width, height = canvas.height
        let mean = rng.uniform(0.1, 0.9)
        addValueNoise(canvas, cells: 2 + rng.int(below: 6), amplitude: rng.uniform(0.1, 0.6), mean: mean, rng: &rng)
        if rng.chance(0.6) {
            addValueNoise(canvas, cells: 10 + rng.int(below: 30), amplitude: rng.uniform(0.03, 0.15), mean: 0, rng: &rng)
        }
        if rng.chance(0.3) { addStripes(canvas, &rng) }

        let side = Float(min(size, height))
        let shapes = 3 + rng.int(below: 10)
        for _ in 0..<shapes {
            let center = SynthPoint(rng.uniform(-0.1, 1.1) * Float(size), rng.uniform(-0.1, 1.1) * Float(height))
            let extent = side * rng.uniform(0.04, 0.45)
            let paint = SynthPaint(rng.unit(), alpha: rng.uniform(0.35, 1))
            let angle = rng.uniform(0, 2 * Float.pi)
            switch rng.int(below: 5) {
            case 0:
                canvas.fill(SynthShapes.ellipse(center: center, rx: extent, ry: extent * rng.uniform(0.2, 1), angle: angle), paint)
            case 1:
                let box = SynthShapes.ellipse(center: center, rx: extent, ry: extent * rng.uniform(0.1, 1), angle: angle, sides: 4)
                canvas.fill(box, paint)
            case 2:
                var line: [SynthPoint] = []
                let (s, c) = DeterministicTrig.sinCos(angle)
                let bend = rng.uniform(-0.4, 0.4) * extent
                for k in 0...8 {
                    let t = Float(k) / 8 * 2 - 1
                    line.append(center + SynthPoint(c * t * extent * 2 - s * bend * (1 - t * t), s * t * extent * 2 + c * bend * (1 - t * t)))
                }
                canvas.fill(SynthShapes.stroke(line, width: rng.uniform(0.5, 0.08 * side)), paint)
            default:
                // A random star-ish polygon: irregular blobs and spikes.
                let corners = 3 + rng.int(below: 6)
                var poly: [SynthPoint] = []
                for k in 0..<corners {
                    let (s, c) = DeterministicTrig.sinCos(angle + 2 * Float.pi * Float(k) / Float(corners))
                    let r = extent * rng.uniform(0.3, 1)
                    poly.append(center + SynthPoint(c * r, s * r))
                }
                canvas.fill(poly, paint)
            }
        }
    }

    /// Bilinear interpolation of a random (cells+1)^2 grid: blotchy light and surfaces.
    private static func addValueNoise(_ canvas: SynthCanvas, cells: Int, amplitude: Float, mean: Float,
                                      rng: inout SplitMix64) {
        let n = cells + 1
        var grid = [Float](repeating: 0, count: n * n)
        for i in 0..<grid.count { grid[i] = mean + amplitude * (rng.unit() - 0.5) }
        let w = canvas.width, h = canvas.height
        let sx = Float(cells) / Float(w), sy = Float(cells) / Float(h)
        grid.withUnsafeBufferPointer { g in
            for y in 0..<h {
                let gy = (Float(y) + 0.5) * sy
                let iy = min(Int(gy), cells - 1), fy = gy - Float(iy)
                let row = canvas.pixels + y * w
                let top = g.baseAddress! + iy * n, bottom = top + n
                for x in 0..<w {
                    let gx = (Float(x) + 0.5) * sx
                    let ix = min(Int(gx), cells - 1), fx = gx - Float(ix)
                    let upper = top[ix] + (top[ix + 1] - top[ix]) * fx
                    let lower = bottom[ix] + (bottom[ix + 1] - bottom[ix]) * fx
                    row[x] += upper + (lower - upper) * fy
                }
            }
        }
    }

    /// Triangle-wave stripes at a random angle and period (wallpaper, blinds, fabric).
    private static func addStripes(_ canvas: SynthCanvas, _ rng: inout SplitMix64) {
        let (s, c) = DeterministicTrig.sinCos(rng.uniform(0, Float.pi))
        let period = rng.uniform(4, 40)
        let amplitude = rng.uniform(0.05, 0.25)
        let kx = c / period, ky = s / period
        let w = canvas.width, h = canvas.height
        for y in 0..<h {
            let row = canvas.pixels + y * w
            for x in 0..<w {
                let phase = Float(x) * kx + Float(y) * ky
                let frac = phase - phase.rounded(.down)
                row[x] += amplitude * (abs(frac - 0.5) * 2 - 0.5)
            }
        }
    }

    /// Exposure and a light gradient over the whole picture, then blur and sensor noise.
    static func finish(_ canvas: SynthCanvas, _ rng: inout SplitMix64) {
        let w = canvas.width, h = canvas.height
        let (s, c) = DeterministicTrig.sinCos(rng.uniform(0, 2 * Float.pi))
        let slope = rng.uniform(0, 0.5) / Float(max(w, h))
        let gain = rng.uniform(0.7, 1.25), offset = rng.uniform(-0.1, 0.1)
        let cx = Float(w) / 2, cy = Float(h) / 2
        for y in 0..<h {
            let row = canvas.pixels + y * w
            for x in 0..<w {
                let light = 1 + slope * ((Float(x) - cx) * c + (Float(y) - cy) * s)
                row[x] = (row[x] * light - 0.5) * gain + 0.5 + offset
            }
        }
        let blurPasses = rng.chance(0.4) ? 1 + rng.int(below: 2) : 0
        if blurPasses > 0 {
            var scratch = [Float](repeating: 0, count: w * h)
            scratch.withUnsafeMutableBufferPointer { tmp in
                for _ in 0..<blurPasses { blur121(canvas.pixels, tmp.baseAddress!, w, h) }
            }
        }
        // Sensor noise: four 16-bit uniforms from one draw give an Irwin-Hall ~ normal sample.
        let sigma = rng.uniform(0.004, 0.045)
        let scale = sigma * 1.7320508 / 65536
        for i in 0..<(w * h) {
            let r = rng.next()
            let sum = Float(r & 0xFFFF) + Float((r >> 16) & 0xFFFF) + Float((r >> 32) & 0xFFFF) + Float(r >> 48)
            canvas.pixels[i] += (sum - 131_070) * scale
        }
    }

    /// Separable [1 2 1]/4 blur in place (edges clamp).
    private static func blur121(_ p: UnsafeMutablePointer<Float>, _ tmp: UnsafeMutablePointer<Float>, _ w: Int, _ h: Int) {
        for y in 0..<h {
            let src = p + y * w, dst = tmp + y * w
            for x in 0..<w {
                let l = src[max(x - 1, 0)], r = src[min(x + 1, w - 1)]
                dst[x] = 0.25 * l + 0.5 * src[x] + 0.25 * r
            }
        }
        for y in 0..<h {
            let up = tmp + max(y - 1, 0) * w, mid = tmp + y * w, down = tmp + min(y + 1, h - 1) * w
            let dst = p + y * w
            for x in 0..<w { dst[x] = 0.25 * up[x] + 0.5 * mid[x] + 0.25 * down[x] }
        }
    }
}

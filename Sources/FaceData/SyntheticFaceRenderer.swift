/// Paints one synthetic face: skin, hair, brows, eyes, nose and mouth drawn through the keypoints of a
/// `SynthFaceGeometry`, over a cluttered background.
///
/// Feature tones are set relative to the skin tone (lips darker than skin, pupils much darker, sclera
/// lighter) so every feature stays visible whatever the skin, lighting or exposure; all face paints
/// share one light field so shading stays consistent across the face.

enum SynthFaceRenderer {
    static func render(_ g: SynthFaceGeometry, size: Int, look: inout SplitMix64, scene: inout SplitMix64) -> GreyImage {
        let canvas = SynthCanvas(width: size, height: size)
        SynthBackground.paint(canvas, &scene)

        let k = g.keypoints
        let unit = g.pixelsPerUnit
        func points(_ range: ClosedRange<Int>) -> [SynthPoint] { range.map { k[$0] } }

        // One light field for the whole head.
        let skin = look.uniform(0.3, 0.82)
        let (ls, lc) = DeterministicTrig.sinCos(look.uniform(0, 2 * Float.pi))
        let strength = look.uniform(0, 0.45) / (1.3 * unit)
        var skinPaint = SynthPaint(skin)
        skinPaint.lx = strength * lc; skinPaint.ly = strength * ls
        skinPaint.cx = g.faceCenter.x; skinPaint.cy = g.faceCenter.y
        skinPaint.bulge = skin * look.uniform(0.04, 0.14)
        skinPaint.bx = g.faceCenter.x - lc * 0.3 * unit; skinPaint.by = g.faceCenter.y - ls * 0.3 * unit
        skinPaint.invR2 = 1 / (1.1 * unit * 1.1 * unit)
        func lit(_ tone: Float, alpha: Float = 1) -> SynthPaint { SynthPaint(tone, litLike: skinPaint, alpha: alpha) }

        let dark = look.chance(0.7)
        let hairTone = dark ? look.uniform(0.04, 0.3) : look.uniform(0.45, 0.85)
        if let long = g.longHair { canvas.fill(SynthShapes.spline(long, steps: 4, closed: true), lit(hairTone)) }
        canvas.fill(g.shoulders, lit(look.unit()))
        canvas.fill(g.neck, lit(skin * 0.78))
        for ear in g.ears { canvas.fill(ear, lit(skin * 0.9)) }

        // Face: the jaw curve through 0-16 closed over the head top.
        let jaw = SynthShapes.spline(points(0...16), steps: 5)
        canvas.fill(jaw + SynthShapes.spline(g.headTop, steps: 3), skinPaint)
        // A soft rim shadow along the jaw keeps the outline visible on a skin-coloured background.
        canvas.fill(SynthShapes.stroke(jaw, width: 0.035 * unit, startScale: 0.3, endScale: 0.3, bulge: 1.5),
                    lit(skin * 0.7, alpha: look.uniform(0.3, 0.7)))

        if let hair = g.hair { canvas.fill(SynthShapes.spline(hair, steps: 3, closed: true), lit(hairTone)) }

        drawBrows(canvas, k, g, lit(min(hairTone, skin * look.uniform(0.25, 0.6)), alpha: look.uniform(0.75, 1)))
        drawEyes(canvas, k, g, skin: skin, light: skinPaint, &look)
        drawNose(canvas, k, g, skin: skin, light: skinPaint, lightX: lc, lightY: ls, &look)
        drawMouth(canvas, k, g, skin: skin, light: skinPaint, &look)

        SynthBackground.finish(canvas, &scene)
        return canvas.image()
    }

    private static func drawBrows(_ canvas: SynthCanvas, _ k: [SynthPoint], _ g: SynthFaceGeometry, _ paint: SynthPaint) {
        let left = SynthShapes.spline(Array(k[17...21]), steps: 4)
        let right = SynthShapes.spline(Array(k[22...26]), steps: 4)
        canvas.fill(SynthShapes.stroke(left, width: g.browWidth, startScale: 0.45, endScale: 1, bulge: 0.25), paint)
        canvas.fill(SynthShapes.stroke(right, width: g.browWidth, startScale: 1, endScale: 0.45, bulge: 0.25), paint)
    }

    private static func drawEyes(_ canvas: SynthCanvas, _ k: [SynthPoint], _ g: SynthFaceGeometry, skin: Float,
                                 light: SynthPaint, _ rng: inout SplitMix64) {
        func lit(_ tone: Float, _ alpha: Float = 1) -> SynthPaint { SynthPaint(tone, litLike: light, alpha: alpha) }
        let unit = g.pixelsPerUnit
        let sclera = min(0.97, max(skin * 1.1, 0.55) + rng.uniform(0, 0.2))
        let iris = min(rng.uniform(0.08, 0.45), skin * 0.6)
        let pupil = iris * rng.uniform(0.1, 0.4)
        let lidTone = skin * rng.uniform(0.12, 0.35)
        let creaseAlpha = rng.uniform(0.2, 0.6)
        // Left eye 36 (outer), 37, 38, 39 (inner), 40, 41; right eye 42 (inner), 43, 44, 45 (outer), 46, 47.
        let eyes: [(upper: [Int], lower: [Int])] = [([36, 37, 38, 39], [39, 40, 41, 36]), ([42, 43, 44, 45], [45, 46, 47, 42])]
        for (e, eye) in eyes.enumerated() {
            let upper = SynthShapes.spline(eye.upper.map { k[$0] }, steps: 6)
            let lower = SynthShapes.spline(eye.lower.map { k[$0] }, steps: 6)
            let opening = Array(upper.dropLast()) + Array(lower.dropLast())
            let a = k[eye.upper[0]], b = k[eye.upper[3]]
            let center = (a + b) * 0.5
            let across = b - a
            let eyeWidth = across.length
            let angle = atan2Deterministic(across.y, across.x)

            // Socket shadow and lid crease above the eye.
            canvas.fill(SynthShapes.ellipse(center: center + SynthPoint(0, -0.02 * unit), rx: eyeWidth * 0.7,
                                            ry: eyeWidth * 0.4, angle: angle, sides: 20), lit(skin * 0.88, 0.35))
            let up = SynthPoint(across.y, -across.x) * (1 / max(eyeWidth, 1e-3))
            let crease = upper.map { $0 + up * (0.055 * unit) }
            canvas.fill(SynthShapes.stroke(crease, width: 0.018 * unit, startScale: 0.2, endScale: 0.2, bulge: 2),
                        lit(skin * 0.6, creaseAlpha))

            canvas.fill(opening, lit(sclera))
            canvas.setClip(opening)
            let irisCenter = g.irisCenters[e]
            canvas.fill(SynthShapes.ellipse(center: irisCenter, rx: g.irisRadius, ry: g.irisRadius, sides: 24), lit(iris), clipped: true)
            canvas.fill(SynthShapes.ellipse(center: irisCenter, rx: g.irisRadius * 0.45, ry: g.irisRadius * 0.45, sides: 16),
                        lit(pupil), clipped: true)
            let glint = irisCenter + SynthPoint(-0.3, -0.35) * g.irisRadius
            canvas.fill(SynthShapes.ellipse(center: glint, rx: g.irisRadius * 0.18, ry: g.irisRadius * 0.18, sides: 10),
                        SynthPaint(0.97, alpha: 0.8), clipped: true)

            // Dark upper lid line (lashes), faint lower lid.
            canvas.fill(SynthShapes.stroke(upper, width: 0.028 * unit, startScale: 0.3, endScale: 0.3, bulge: 1.5), lit(lidTone))
            canvas.fill(SynthShapes.stroke(lower, width: 0.014 * unit, startScale: 0.3, endScale: 0.3, bulge: 1), lit(skin * 0.55, 0.6))
        }
    }

    private static func drawNose(_ canvas: SynthCanvas, _ k: [SynthPoint], _ g: SynthFaceGeometry, skin: Float,
                                 light: SynthPaint, lightX: Float, lightY: Float, _ rng: inout SplitMix64) {
        func lit(_ tone: Float, _ alpha: Float = 1) -> SynthPaint { SynthPaint(tone, litLike: light, alpha: alpha) }
        let unit = g.pixelsPerUnit
        // The bridge casts a shadow on the side away from the light.
        let side: Float = lightX >= 0 ? -1 : 1
        let offset = SynthPoint(side * 0.07 * unit, 0)
        let bridge = SynthShapes.spline(Array(k[27...30]), steps: 4).map { $0 + offset }
        canvas.fill(SynthShapes.stroke(bridge, width: 0.06 * unit, startScale: 0.3, endScale: 1),
                    lit(skin * 0.8, rng.uniform(0.3, 0.6)))
        canvas.fill(SynthShapes.ellipse(center: k[30], rx: 0.08 * unit, ry: 0.07 * unit, sides: 16),
                    lit(min(1, skin * 1.12), rng.uniform(0.3, 0.7)))
        // Nostril wings round from 31/35 up towards the tip; shadow along the base 31-35.
        for (wing, towards) in [(31, 32), (35, 34)] {
            let base = k[wing], inner = k[towards]
            let outward = base - inner
            let up = k[30] - k[33]
            let curve = [inner + (base - inner) * 0.3 + up * 0.1, base, base + outward * 0.35 + up * 0.45, base + up * 0.9 - outward * 0.1]
            canvas.fill(SynthShapes.stroke(SynthShapes.spline(curve, steps: 5), width: 0.022 * unit, startScale: 0.3, endScale: 0.2, bulge: 1),
                        lit(skin * 0.65, 0.6))
        }
        canvas.fill(SynthShapes.stroke(SynthShapes.spline(Array(k[31...35]), steps: 4), width: 0.03 * unit,
                                       startScale: 0.4, endScale: 0.4, bulge: 0.6), lit(skin * 0.72, 0.5))
        for hole in g.nostrils { canvas.fill(hole, lit(skin * 0.3, 0.85)) }
    }

    private static func drawMouth(_ canvas: SynthCanvas, _ k: [SynthPoint], _ g: SynthFaceGeometry, skin: Float,
                                  light: SynthPaint, _ rng: inout SplitMix64) {
        func lit(_ tone: Float, _ alpha: Float = 1) -> SynthPaint { SynthPaint(tone, litLike: light, alpha: alpha) }
        let unit = g.pixelsPerUnit
        let lipTone = skin * rng.uniform(0.55, 0.82)
        let outer = SynthShapes.spline(Array(k[48...59]), steps: 5, closed: true)
        canvas.fill(outer, lit(lipTone))
        // The upper lip faces down, away from the light: a little darker than the lower one.
        let upperLip = SynthShapes.spline(Array(k[48...54]), steps: 5) + SynthShapes.spline([k[54], k[64], k[63], k[62], k[61], k[60], k[48]], steps: 5)
        canvas.fill(upperLip, lit(lipTone * 0.88))
        if g.mouthOpen > 0.02 {
            let inner = SynthShapes.spline(Array(k[60...67]), steps: 5, closed: true)
            canvas.fill(inner, lit(skin * rng.uniform(0.05, 0.2)))
            if rng.chance(0.6) {
                canvas.setClip(inner)
                let teethDepth = rng.uniform(0.03, 0.08) * unit
                let top = [k[60], k[61], k[62], k[63], k[64]]
                let bottom = top.reversed().map { SynthPoint($0.x, $0.y + teethDepth) }
                canvas.fill(top + bottom, lit(min(0.95, skin * rng.uniform(1, 1.3))), clipped: true)
            }
        } else {
            let seam = SynthShapes.spline([k[48], k[60], k[61], k[62], k[63], k[64], k[54]], steps: 4)
            canvas.fill(SynthShapes.stroke(seam, width: 0.022 * unit, startScale: 0.4, endScale: 0.4, bulge: 0.6), lit(skin * 0.3))
        }
    }

    /// atan2 without libm (for ellipse orientation only): Double polynomial after octant reduction.
    static func atan2Deterministic(_ y: Float, _ x: Float) -> Float {
        let ax = abs(Double(x)), ay = abs(Double(y))
        if ax == 0 && ay == 0 { return 0 }
        let swap = ay > ax
        let t = swap ? ax / ay : ay / ax                     // in [0, 1]
        // atan(t) = 2 atan(t / (1 + sqrt(1 + t^2))) brings the argument below tan(pi/8); then a series.
        let u = t / (1 + (1 + t * t).squareRoot())
        let u2 = u * u
        var s = 0.0
        var term = u
        for n in 0..<12 { s += term / Double(2 * n + 1); term *= -u2 }
        var angle = 2 * s
        if swap { angle = Double.pi / 2 - angle }
        if x < 0 { angle = Double.pi - angle }
        if y < 0 { angle = -angle }
        return Float(angle)
    }
}

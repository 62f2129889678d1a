/// The geometry of one synthetic face: a parametric 3D face in model units, posed and projected.
///
/// Model space: x right, y down, z toward the camera; the jaw is about 2 units wide, the outer eye
/// corners about 1.2 apart. Every one of the 68 iBUG points is placed on a feature the renderer draws
/// through it (the jaw curve is the face outline, lid curves pass through 36-47, lip curves through
/// 48-67, ...), so the labels are exact by construction. Yaw and pitch are real 3D rotations of points
/// with depth: the nose swings toward the turned side and the far cheek compresses, as in a photo.

/// Weak-perspective camera: rotate (roll * pitch * yaw), scale, translate.
struct SynthPose {
    var m00: Float = 1, m01: Float = 0, m02: Float = 0
    var m10: Float = 0, m11: Float = 1, m12: Float = 0
    var scale: Float = 1, tx: Float = 0, ty: Float = 0

    init(yaw: Float, pitch: Float, roll: Float) {
        let (sy, cy) = DeterministicTrig.sinCos(yaw)
        let (sp, cp) = DeterministicTrig.sinCos(pitch)
        let (sr, cr) = DeterministicTrig.sinCos(roll)
        // Yaw about y (z toward +x when positive), then pitch about x (z toward -y: face tilts up),
        // then roll in the image plane. Only the first two rows survive the projection.
        let a00 = cy, a01: Float = 0, a02 = sy
        let a10 = -sp * -sy, a11 = cp, a12 = -sp * cy
        m00 = cr * a00 - sr * a10; m01 = cr * a01 - sr * a11; m02 = cr * a02 - sr * a12
        m10 = sr * a00 + cr * a10; m11 = sr * a01 + cr * a11; m12 = sr * a02 + cr * a12
    }

    @inline(__always)
    func project(_ x: Float, _ y: Float, _ z: Float) -> SynthPoint {
        SynthPoint(scale * (m00 * x + m01 * y + m02 * z) + tx, scale * (m10 * x + m11 * y + m12 * z) + ty)
    }

    func project(_ p: SynthPoint3) -> SynthPoint { project(p.x, p.y, p.z) }
}

struct SynthPoint3 {
    var x: Float, y: Float, z: Float
    init(_ x: Float, _ y: Float, _ z: Float) { self.x = x; self.y = y; self.z = z }
    var mirrored: SynthPoint3 { SynthPoint3(-x, y, z) }
}

/// Everything the renderer needs about one face's shape, already in image pixels.
struct SynthFaceGeometry {
    var keypoints: [SynthPoint] = []
    /// The top of the head from the right end of the jaw (point 16) over to the left (point 0).
    var headTop: [SynthPoint] = []
    /// Hair as a closed polygon (nil: bald), and whether it falls behind the face to the shoulders.
    var hair: [SynthPoint]? = nil
    var longHair: [SynthPoint]? = nil
    var ears: [[SynthPoint]] = []
    var neck: [SynthPoint] = []
    var shoulders: [SynthPoint] = []
    var irisCenters: [SynthPoint] = []
    var irisRadius: Float = 0
    var nostrils: [[SynthPoint]] = []
    /// Pixels per model unit, and the head's in-plane angle, for sizing strokes and lighting.
    var pixelsPerUnit: Float = 1
    var roll: Float = 0
    var yaw: Float = 0
    var faceCenter = SynthPoint(0, 0)
    var browWidth: Float = 0
    var mouthOpen: Float = 0
}

enum SynthFaceModel {
    /// Draws shape, expression and pose from `rng` and places the face inside a `size` x `size` image.
    static func generate(_ rng: inout SplitMix64, size: Int) -> SynthFaceGeometry {
        // Shape: proportions vary by a few percent each, as between people.
        let jawHalfWidth = 1 + 0.07 * rng.gaussian()
        let jawTop: Float = -0.02 + 0.05 * rng.gaussian()
        let faceLength = 1.05 + 0.08 * rng.gaussian()   // jaw top to chin
        let jawSquare = rng.uniform(-0.15, 0.3)         // > 0: square jaw; < 0: pointed chin
        let eyeY: Float = -0.3 + 0.04 * rng.gaussian()
        let eyeHalfSpacing: Float = 0.42 + 0.03 * rng.gaussian()
        let eyeWidth: Float = 0.36 + 0.025 * rng.gaussian()
        let eyeTilt: Float = 0.025 * rng.gaussian()
        let noseLength: Float = 0.5 + 0.05 * rng.gaussian()
        let noseHalfWidth: Float = 0.17 + 0.025 * rng.gaussian()
        let mouthGap: Float = 0.28 + 0.04 * rng.gaussian()   // nose base to mouth line
        let mouthHalfWidth: Float = 0.33 + 0.035 * rng.gaussian()
        let upperLip: Float = 0.08 + 0.015 * rng.gaussian()
        let lowerLip: Float = 0.1 + 0.018 * rng.gaussian()
        let browArch: Float = 0.05 + 0.025 * rng.gaussian()
        let browGap: Float = 0.17 + 0.025 * rng.gaussian()

        // Expression.
        let eyeOpen: Float = rng.chance(0.08) ? rng.uniform(0.1, 0.4) : rng.uniform(0.7, 1.3)
        let browRaise: Float = rng.chance(0.3) ? rng.uniform(-0.04, 0.12) : 0.015 * rng.gaussian()
        let mouthOpen: Float = rng.chance(0.4) ? rng.uniform(0.03, 0.38) : 0
        let smile: Float = rng.chance(0.5) ? rng.uniform(-0.3, 1) : 0.1 * rng.gaussian()

        // Pose: roll mostly within ±25 degrees, sometimes more; yaw and pitch as far as a
        // frontal-ish outline stays plausible.
        let deg = Float.pi / 180
        let roll = (rng.chance(0.85) ? 13 * rng.gaussian() : rng.uniform(-45, 45)) * deg
        let yaw = rng.uniform(-30, 30) * deg
        let pitch = rng.uniform(-18, 18) * deg

        var model = [SynthPoint3](repeating: SynthPoint3(0, 0, 0), count: 68)

        // Jaw 0-16: a squashed half-ellipse from ear level round the chin; the chin drops with the mouth.
        let chinDrop = mouthOpen * 0.55
        for i in 0...16 {
            let (s, c) = DeterministicTrig.sinCos(Float.pi * Float(i) / 16)
            let x = -jawHalfWidth * c * (1 + 0.12 * jawSquare * s * s)
            let y = jawTop + (faceLength + chinDrop * s) * s * (1 + jawSquare * c * c)
            model[i] = SynthPoint3(x, y, 0.15 + 0.35 * s * s)
        }

        // Brows 17-21 (outer to inner, left) and 22-26 (inner to outer, right).
        let browY = eyeY - browGap - browRaise
        let browInner = eyeHalfSpacing - eyeWidth / 2 - 0.03, browOuter = eyeHalfSpacing + eyeWidth / 2 + 0.1
        for k in 0..<5 {
            let t = Float(k) / 4                 // 0 outer, 1 inner
            let x = browOuter + (browInner - browOuter) * t
            let arch = browArch * (t + 0.15) * (0.85 - t) / 0.25
            let p = SynthPoint3(-x, browY - arch + 0.03 * (1 - t), 0.42 + 0.1 * t)
            model[17 + k] = p
            model[26 - k] = p.mirrored
        }

        // Nose bridge 27-30 down to the tip; base 31-35 from the left wing to the right.
        let tipY = eyeY + noseLength
        for k in 0..<4 {
            let t = Float(k) / 3
            model[27 + k] = SynthPoint3(0, eyeY - 0.02 + (tipY - eyeY + 0.02) * t, 0.5 + 0.28 * t)
        }
        let baseY = tipY + 0.07
        model[31] = SynthPoint3(-noseHalfWidth, baseY - 0.03, 0.52)
        model[32] = SynthPoint3(-noseHalfWidth * 0.5, baseY + 0.015, 0.6)
        model[33] = SynthPoint3(0, baseY + 0.03, 0.66)
        model[34] = model[32].mirrored
        model[35] = model[31].mirrored

        // Eyes: 36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid; 42-47 mirrored
        // (42 inner, 43-44 upper, 45 outer, 46-47 lower).
        let upper = 0.1 * eyeOpen, lower = 0.055 * eyeOpen
        let cx = -eyeHalfSpacing, half = eyeWidth / 2
        let leftEye = [
            SynthPoint3(cx - half, eyeY - eyeTilt, 0.36),
            SynthPoint3(cx - half / 3, eyeY - upper - eyeTilt * 0.4, 0.46),
            SynthPoint3(cx + half / 3, eyeY - upper * 0.92, 0.47),
            SynthPoint3(cx + half, eyeY + 0.01, 0.44),
            SynthPoint3(cx + half / 3, eyeY + lower, 0.46),
            SynthPoint3(cx - half / 3, eyeY + lower * 1.05 - eyeTilt * 0.4, 0.45),
        ]
        for k in 0..<6 { model[36 + k] = leftEye[k] }
        let rightOrder = [3, 2, 1, 0, 5, 4]    // 42..47 mirror 39, 38, 37, 36, 41, 40
        for k in 0..<6 { model[42 + k] = leftEye[rightOrder[k]].mirrored }

        // Mouth: outer 48-59 (48 left corner, clockwise), inner 60-67. A smile lifts the corners along
        // a parabola; an open mouth parts the inner contour and moves the lips apart.
        let mouthY = baseY + mouthGap
        let lift = 0.07 * smile
        let w = mouthHalfWidth * (1 + 0.12 * smile)
        func curve(_ x: Float) -> Float { -lift * (x / w) * (x / w) }
        func lip(_ x: Float, _ y: Float) -> SynthPoint3 {
            let u = x / w
            return SynthPoint3(x, mouthY + y + curve(x), 0.66 - 0.16 * u * u)
        }
        let gap = mouthOpen / 2
        let bow: Float = 0.015 + 0.01 * rng.unit()
        model[48] = lip(-w, 0)
        model[49] = lip(-0.55 * w, -upperLip * 0.8 - gap)
        model[50] = lip(-0.2 * w, -upperLip - gap)
        model[51] = lip(0, -upperLip + bow - gap)
        model[52] = lip(0.2 * w, -upperLip - gap)
        model[53] = lip(0.55 * w, -upperLip * 0.8 - gap)
        model[54] = lip(w, 0)
        model[55] = lip(0.6 * w, lowerLip * 0.8 + gap)
        model[56] = lip(0.25 * w, lowerLip + gap)
        model[57] = lip(0, lowerLip * 1.03 + gap)
        model[58] = lip(-0.25 * w, lowerLip + gap)
        model[59] = lip(-0.6 * w, lowerLip * 0.8 + gap)
        model[60] = lip(-0.9 * w, 0)
        model[61] = lip(-0.35 * w, -gap * 0.9)
        model[62] = lip(0, -gap)
        model[63] = lip(0.35 * w, -gap * 0.9)
        model[64] = lip(0.9 * w, 0)
        model[65] = lip(0.35 * w, gap * 0.9)
        model[66] = lip(0, gap)
        model[67] = lip(-0.35 * w, gap * 0.9)

        // Pose at unit scale, then size and place the keypoint extent inside the image.
        var pose = SynthPose(yaw: yaw, pitch: pitch, roll: roll)
        var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
        for p in model {
            let q = pose.project(p)
            minX = min(minX, q.x); maxX = max(maxX, q.x); minY = min(minY, q.y); maxY = max(maxY, q.y)
        }
        let side = Float(size)
        let margin = 0.03 * side
        let extent = max(maxX - minX, maxY - minY)
        let fraction = rng.uniform(0.32, 0.82)
        pose.scale = min(fraction * side, side - 2 * margin) / extent
        let spanX = (maxX - minX) * pose.scale, spanY = (maxY - minY) * pose.scale
        let left = margin + rng.unit() * max(0, side - 2 * margin - spanX)
        let top = margin + rng.unit() * max(0, side - 2 * margin - spanY)
        pose.tx = left - minX * pose.scale
        pose.ty = top - minY * pose.scale

        var g = SynthFaceGeometry()
        g.keypoints = model.map { pose.project($0) }
        g.pixelsPerUnit = pose.scale
        g.roll = roll
        g.yaw = yaw
        g.mouthOpen = mouthOpen
        g.browWidth = (0.055 + 0.02 * rng.unit()) * pose.scale
        g.faceCenter = pose.project(0, eyeY + 0.4, 0.3)

        // Head top: an arc over the brows from the right jaw end back to the left.
        let headHeight: Float = 1.2 + 0.1 * rng.gaussian()
        let topWidth = jawHalfWidth * (0.97 + 0.05 * rng.unit())
        var top3: [SynthPoint3] = []
        for k in 0...12 {
            let (s, c) = DeterministicTrig.sinCos(Float.pi * Float(k) / 12)
            top3.append(SynthPoint3(topWidth * c, jawTop - headHeight * s, 0.15 + 0.2 * s))
        }
        g.headTop = top3.map { pose.project($0) }

        // Hair: a cap from the hairline over the head; sometimes long hair behind the face as well.
        if !rng.chance(0.15) {
            let hairline = browY - rng.uniform(0.18, 0.5)
            let volume: Float = rng.uniform(1.04, 1.2)
            let sideDrop: Float = rng.uniform(-0.1, 0.35)
            var outer: [SynthPoint3] = [], inner: [SynthPoint3] = []
            for k in 0...12 {
                let (s, c) = DeterministicTrig.sinCos(Float.pi * Float(k) / 12)
                outer.append(SynthPoint3(topWidth * volume * c, jawTop + sideDrop - (headHeight * volume + sideDrop) * s, 0.1))
                // The hairline stays high across the forehead and only drops at the temples.
                let rise = 1 - (1 - s) * (1 - s) * (1 - s)
                inner.append(SynthPoint3(topWidth * 1.01 * c, jawTop + sideDrop * (1 - s) + (hairline - jawTop) * rise, 0.3))
            }
            g.hair = outer.map { pose.project($0) } + inner.reversed().map { pose.project($0) }
            if rng.chance(0.35) {
                let length: Float = rng.uniform(1.2, 2.2)
                let spread: Float = rng.uniform(1.1, 1.4)
                let back = [SynthPoint3(-jawHalfWidth * spread, jawTop + length, -0.3),
                            SynthPoint3(-jawHalfWidth * volume, jawTop - 0.5, -0.3),
                            SynthPoint3(jawHalfWidth * volume, jawTop - 0.5, -0.3),
                            SynthPoint3(jawHalfWidth * spread, jawTop + length, -0.3)]
                g.longHair = back.map { pose.project($0) }
            }
        }

        // Ears at the sides, neck and shoulders below: drawn behind the face.
        for sign in [Float(-1), 1] {
            var ear: [SynthPoint] = []
            for k in 0..<16 {
                let (s, c) = DeterministicTrig.sinCos(Float.pi * 2 * Float(k) / 16)
                ear.append(pose.project(sign * (jawHalfWidth * 0.97 + 0.1 * c), eyeY + 0.2 + 0.26 * s, -0.15))
            }
            g.ears.append(ear)
        }
        let neckWidth = jawHalfWidth * rng.uniform(0.45, 0.6)
        let neckTop = jawTop + faceLength * 0.55
        g.neck = [pose.project(-neckWidth, neckTop, -0.1), pose.project(neckWidth, neckTop, -0.1),
                  pose.project(neckWidth * 1.05, neckTop + 3, -0.2), pose.project(-neckWidth * 1.05, neckTop + 3, -0.2)]
        let shoulderY = jawTop + faceLength + rng.uniform(0.6, 0.9)
        let shoulderWidth = rng.uniform(2.2, 3)
        g.shoulders = [pose.project(-neckWidth * 1.3, shoulderY - 0.1, -0.3), pose.project(neckWidth * 1.3, shoulderY - 0.1, -0.3),
                       pose.project(shoulderWidth, shoulderY + 0.6, -0.3), pose.project(shoulderWidth, shoulderY + 4, -0.3),
                       pose.project(-shoulderWidth, shoulderY + 4, -0.3), pose.project(-shoulderWidth, shoulderY + 0.6, -0.3)]

        // Irises look in the same direction; nostrils sit just above the nose base.
        let gazeX = rng.uniform(-0.3, 0.3) * half, gazeY = rng.uniform(-0.2, 0.25) * upper
        for sign in [Float(-1), 1] {
            g.irisCenters.append(pose.project(sign * eyeHalfSpacing + gazeX, eyeY + gazeY, 0.5))
        }
        g.irisRadius = eyeWidth * rng.uniform(0.2, 0.24) * pose.scale
        for sign in [Float(-1), 1] {
            var hole: [SynthPoint] = []
            for k in 0..<12 {
                let (s, c) = DeterministicTrig.sinCos(Float.pi * 2 * Float(k) / 12)
                hole.append(pose.project(sign * (noseHalfWidth * 0.55 + 0.045 * c), baseY - 0.01 + 0.022 * s, 0.6))
            }
            g.nostrils.append(hole)
        }
        return g
    }
}

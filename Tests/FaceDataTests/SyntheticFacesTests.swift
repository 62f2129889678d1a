import FaceData
import Foundation
import XCTest

/// The synthetic dataset: determinism, label geometry, labels on drawn features, variation, difficulty.
final class SyntheticFacesTests: XCTestCase {
    /// 200 faces shared by the statistical tests (rendered once: ~0.3 s in release).
    static let faces = SyntheticFaces(count: 200, seed: 7)
    static let records: [FaceRecord] = (0..<200).map { try! faces.record(at: $0) }

    func testSameSeedAndIndexGiveIdenticalFaces() throws {
        let a = SyntheticFaces(count: 10, seed: 42), b = SyntheticFaces(count: 10, seed: 42)
        for index in [0, 3, 9, 12_345] {
            let ra = try a.record(at: index), rb = try b.record(at: index)
            XCTAssertEqual(ra.image.pixels, rb.image.pixels, "face \(index)")
            XCTAssertEqual(ra.keypoints, rb.keypoints, "face \(index)")
            XCTAssertEqual(ra.box, rb.box)
        }
        let first = try a.record(at: 0)
        XCTAssertNotEqual(first.image.pixels, try a.record(at: 1).image.pixels)
        XCTAssertNotEqual(first.keypoints, try a.record(at: 1).keypoints)
        XCTAssertNotEqual(first.image.pixels, try SyntheticFaces(count: 10, seed: 43).record(at: 0).image.pixels)
        // Past `count` is still a fresh, valid face; a negative index is a clear error.
        XCTAssertEqual(try a.record(at: 1_000_000).keypointCount, 68)
        XCTAssertThrowsError(try a.record(at: -1)) { XCTAssertTrue("\($0)".contains("negative"), "\($0)") }
    }

    /// The batch loader calls record(at:) from several threads at once: results match a serial run.
    func testConcurrentRecordsMatchSerialOnes() throws {
        let faces = SyntheticFaces(count: 8, seed: 5, imageSize: 128)
        let serial = try (0..<8).map { try faces.record(at: $0).image.pixels }
        let lock = NSLock()
        var parallel = [[Float]](repeating: [], count: 8)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let pixels = try! faces.record(at: i).image.pixels
            lock.lock(); parallel[i] = pixels; lock.unlock()
        }
        XCTAssertEqual(parallel, serial)
    }

    func testImageSizeAndMarkup() throws {
        let small = try SyntheticFaces(count: 1, seed: 1, imageSize: 64).record(at: 0)
        XCTAssertEqual(small.image.width, 64)
        XCTAssertEqual(small.image.height, 64)
        let faces = Self.faces
        XCTAssertEqual(faces.count, 200)
        XCTAssertEqual(faces.markup.count, 68)
        XCTAssertEqual(faces.markup.name, "ibug68")
        XCTAssertEqual(faces.markup.normalisingPair?.0, 36)
        XCTAssertEqual(faces.markup.normalisingPair?.1, 45)
        let flip = faces.markup.flipPermutation
        for i in 0..<68 { XCTAssertEqual(flip[flip[i]], i, "flip is an involution at \(i)") }
        for (a, b) in [(0, 16), (8, 8), (17, 26), (21, 22), (27, 27), (30, 30), (31, 35), (33, 33), (36, 45), (39, 42),
                       (40, 47), (41, 46), (48, 54), (51, 51), (55, 59), (57, 57), (60, 64), (62, 62), (65, 67), (66, 66)] {
            XCTAssertEqual(flip[a], b, "flip[\(a)]")
        }
    }

    func testKeypointsInsideImageAndBoxIsTheirExtent() {
        for r in Self.records {
            XCTAssertEqual(r.keypointCount, 68)
            XCTAssertEqual(r.image.width, 256)
            var minX = Float.infinity, maxX = -Float.infinity, minY = Float.infinity, maxY = -Float.infinity
            for p in 0..<68 {
                let x = r.keypoints[2 * p], y = r.keypoints[2 * p + 1]
                XCTAssertTrue(x >= 0 && x < 256 && y >= 0 && y < 256, "\(r.source) point \(p) at (\(x), \(y))")
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
            }
            XCTAssertEqual(r.box, Box(x: minX, y: minY, width: maxX - minX, height: maxY - minY), r.source)
        }
    }

    /// Mirror pairs lie in the right order along the eye axis (36 -> 45) in every face, whatever the
    /// pose: the iBUG points of the image-left half are left of their flip partners.
    func testFlipPartnersAreMirrorImages() {
        let flip = Self.faces.markup.flipPermutation
        let leftHalf = Array(0...7) + Array(17...21) + [31, 32] + Array(36...41) + [48, 49, 50, 58, 59, 60, 61, 67]
        XCTAssertEqual(Set(leftHalf.map { flip[$0] }).count, leftHalf.count)
        for r in Self.records {
            let k = r.keypoints
            let ax = k[90] - k[72], ay = k[91] - k[73]
            for i in leftHalf {
                let j = flip[i]
                let along = (k[2 * j] - k[2 * i]) * ax + (k[2 * j + 1] - k[2 * i + 1]) * ay
                XCTAssertGreaterThan(along, 0, "\(r.source): point \(i) is not left of its mirror \(j)")
            }
        }
    }

    /// Labels sit on what is drawn: the eye has dark pixels (pupil, lashes) that the cheek lacks, the
    /// lips are darker than the skin just outside them, and edges are stronger at the contour points
    /// than 15% of the eye distance away from them.
    func testKeypointsSitOnDrawnFeatures() {
        var darkEyes = 0, darkLips = 0
        var onEdges: Float = 0, offEdges: Float = 0
        for (n, r) in Self.records.enumerated() {
            let k = r.keypoints, image = r.image
            func point(_ i: Int) -> (Float, Float) { (k[2 * i], k[2 * i + 1]) }
            let iod = hypot(k[90] - k[72], k[91] - k[73])
            // Eyes: darkest pixels within the eye outline vs. the cheek between jaw point 2 and nose wing 31.
            var eyeDarkest: Float = 1
            for eye in [36, 42] {
                let xs = (eye..<eye + 6).map { k[2 * $0] }, ys = (eye..<eye + 6).map { k[2 * $0 + 1] }
                let cx = xs.reduce(0, +) / 6, cy = ys.reduce(0, +) / 6
                eyeDarkest = min(eyeDarkest, patchMean(image, cx, cy, radius: 1))
                for (x, y) in zip(xs, ys) {
                    eyeDarkest = min(eyeDarkest, patchMean(image, (x + cx) / 2, (y + cy) / 2, radius: 1))
                }
            }
            let cheek = patchMean(image, (k[4] + k[62]) / 2, (k[5] + k[63]) / 2, radius: 2)
            if eyeDarkest < cheek - 0.08 { darkEyes += 1 }

            // Lips: inside the upper and lower lip vs. skin just above 51 and below 57.
            let (x51, y51) = point(51), (x62, y62) = point(62), (x57, y57) = point(57), (x66, y66) = point(66)
            let upperLip = patchMean(image, (x51 + x62) / 2, (y51 + y62) / 2, radius: 0)
            let lowerLip = patchMean(image, (x57 + x66) / 2, (y57 + y66) / 2, radius: 0)
            let dux = x51 - x62, duy = y51 - y62, du = max(hypot(dux, duy), 1e-3)
            let dlx = x57 - x66, dly = y57 - y66, dl = max(hypot(dlx, dly), 1e-3)
            let step = 0.07 * iod
            let above = patchMean(image, x51 + dux / du * step, y51 + duy / du * step, radius: 0)
            let below = patchMean(image, x57 + dlx / dl * step, y57 + dly / dl * step, radius: 0)
            if upperLip + lowerLip < above + below - 0.04 { darkLips += 1 }

            // Edges at the jaw, eye and outer lip points vs. the same points moved by 0.15 IOD.
            let angle = Float(n) * 2.399963
            let ox = 0.15 * iod * cos(angle), oy = 0.15 * iod * sin(angle)
            for i in Array(0...16) + Array(36...59) {
                let (x, y) = point(i)
                onEdges += strongestEdge(image, x, y)
                offEdges += strongestEdge(image, x + ox, y + oy)
            }
        }
        let total = Self.records.count
        print("synthetic faces: dark eyes \(darkEyes), dark lips \(darkLips) of \(total); edge strength on \(onEdges / Float(total * 41)) off \(offEdges / Float(total * 41))")
        XCTAssertGreaterThanOrEqual(darkEyes, total * 95 / 100, "eyes darker than the cheek in \(darkEyes)/\(total)")
        XCTAssertGreaterThanOrEqual(darkLips, total * 90 / 100, "lips darker than the skin in \(darkLips)/\(total)")
        XCTAssertGreaterThan(onEdges, 1.5 * offEdges, "edge strength on \(onEdges) vs off \(offEdges)")
    }

    func testPoseScaleAndExpressionVary() {
        var rolls: [Float] = [], scales: [Float] = [], yaws: [Float] = [], mouths: [Float] = []
        for r in Self.records {
            let k = r.keypoints
            let ax = k[90] - k[72], ay = k[91] - k[73]
            let iod = hypot(ax, ay)
            rolls.append(atan2(ay, ax) * 180 / .pi)
            scales.append(iod / 256)
            // Nose tip along the eye axis relative to the eye midpoint: swings with yaw.
            let mx = (k[90] + k[72]) / 2, my = (k[91] + k[73]) / 2
            yaws.append(((k[60] - mx) * ax + (k[61] - my) * ay) / (iod * iod))
            mouths.append(hypot(k[132] - k[124], k[133] - k[125]) / iod)
        }
        print("synthetic faces: roll sd \(standardDeviation(rolls)) deg, eye distance \(scales.min()! * 256)-\(scales.max()! * 256) px, "
              + "yaw sd \(standardDeviation(yaws)), open mouths \(mouths.filter { $0 > 0.05 }.count)/200")
        XCTAssertGreaterThan(standardDeviation(rolls), 10, "roll spread")
        XCTAssertLessThan(rolls.min()!, -20)
        XCTAssertGreaterThan(rolls.max()!, 20)
        XCTAssertGreaterThan(scales.max()! / scales.min()!, 2, "scale spread")
        XCTAssertGreaterThan(standardDeviation(yaws), 0.08, "yaw spread")
        let open = mouths.filter { $0 > 0.05 }.count
        XCTAssertTrue((30...130).contains(open), "\(open) of 200 mouths open")
    }

    /// The mean shape (in box-normalised coordinates) placed in each face's box scores badly, so a model
    /// has to read the face; the labels themselves score exactly 0.
    func testMeanShapePredictorScoresBadly() {
        let records = Self.records
        var mean = [Float](repeating: 0, count: 136)
        for r in records {
            let box = r.box!
            for p in 0..<68 {
                mean[2 * p] += (r.keypoints[2 * p] - box.x) / box.width / Float(records.count)
                mean[2 * p + 1] += (r.keypoints[2 * p + 1] - box.y) / box.height / Float(records.count)
            }
        }
        func nme(_ r: FaceRecord, _ predicted: [Float]) -> Float {
            let k = r.keypoints
            let iod = hypot(k[90] - k[72], k[91] - k[73])
            var error: Float = 0
            for p in 0..<68 { error += hypot(predicted[2 * p] - k[2 * p], predicted[2 * p + 1] - k[2 * p + 1]) }
            return error / 68 / iod
        }
        var meanShapeNME: Float = 0, perfectNME: Float = 0
        for r in records {
            let box = r.box!
            var placed = mean
            for p in 0..<68 {
                placed[2 * p] = box.x + mean[2 * p] * box.width
                placed[2 * p + 1] = box.y + mean[2 * p + 1] * box.height
            }
            meanShapeNME += nme(r, placed) / Float(records.count)
            perfectNME += nme(r, r.keypoints) / Float(records.count)
        }
        print("synthetic faces: mean-shape NME \(meanShapeNME)")
        XCTAssertGreaterThan(meanShapeNME, 0.10)
        XCTAssertEqual(perfectNME, 0)
    }

    // MARK: - Helpers

    private func patchMean(_ image: GreyImage, _ x: Float, _ y: Float, radius: Int) -> Float {
        let cx = Int(x), cy = Int(y)
        var sum: Float = 0, n: Float = 0
        for yy in (cy - radius)...(cy + radius) where yy >= 0 && yy < image.height {
            for xx in (cx - radius)...(cx + radius) where xx >= 0 && xx < image.width {
                sum += image.pixels[yy * image.width + xx]
                n += 1
            }
        }
        return n > 0 ? sum / n : 0
    }

    /// Largest central-difference gradient magnitude in the 3x3 pixels around (x, y).
    private func strongestEdge(_ image: GreyImage, _ x: Float, _ y: Float) -> Float {
        let w = image.width, h = image.height
        var best: Float = 0
        for yy in (Int(y) - 1)...(Int(y) + 1) where yy >= 1 && yy < h - 1 {
            for xx in (Int(x) - 1)...(Int(x) + 1) where xx >= 1 && xx < w - 1 {
                let gx = image.pixels[yy * w + xx + 1] - image.pixels[yy * w + xx - 1]
                let gy = image.pixels[(yy + 1) * w + xx] - image.pixels[(yy - 1) * w + xx]
                best = max(best, hypot(gx, gy))
            }
        }
        return best
    }

    private func standardDeviation(_ values: [Float]) -> Float {
        let mean = values.reduce(0, +) / Float(values.count)
        return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
    }
}

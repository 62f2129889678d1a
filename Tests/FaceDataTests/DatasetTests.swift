import FaceData
import Foundation
import TestSupport
import XCTest

final class IMMDatasetTests: XCTestCase {
    func testOpensAll240FacesWithNoseTipInside() throws {
        let options = DatasetOptions(skips: SkipLog(warn: nil))
        let dataset = try openDataset(path: immFolder, options: options)
        XCTAssertEqual(dataset.count, 240)
        XCTAssertEqual(dataset.markup, .imm58)
        XCTAssertEqual(options.skips.count, 0)
        let record = try dataset.record(at: 0)
        XCTAssertNil(record.box)
        XCTAssertEqual(record.keypointCount, 58)
        XCTAssertTrue(record.source.hasSuffix("01-1m.jpg"))
        // 01-1m.asf point 52 is (0.49070060, 0.63137436) relative.
        XCTAssertEqual(record.keypoints[2 * KeypointMarkup.immNoseTip], 0.49070060 * 640, accuracy: 1e-3)
        XCTAssertEqual(record.keypoints[2 * KeypointMarkup.immNoseTip + 1], 0.63137436 * 480, accuracy: 1e-3)
    }

    /// Mirroring the mean shape must land every point near the mean position of its partner.
    func testFlipPermutationMapsMeanShapeOntoPartners() throws {
        let dataset = try IMMDataset(folder: immFolder)
        // Frontal views only (1, 2 and 5 of each person's six): turned heads are not mirror images.
        let frontal = (0..<dataset.count).filter { i in
            let view = try! dataset.record(at: i).source.split(separator: "-").last!.first!
            return "125".contains(view)
        }
        var mean = [Float](repeating: 0, count: 116)
        for i in frontal {
            let record = try dataset.record(at: i)
            for k in 0..<116 { mean[k] += record.keypoints[k] / Float(k % 2 == 0 ? record.image.width : record.image.height) }
        }
        mean = mean.map { $0 / Float(frontal.count) }
        let centre = (0..<58).map { mean[2 * $0] }.reduce(0, +) / 58
        let permutation = KeypointMarkup.imm58.flipPermutation
        XCTAssertEqual(Set(permutation).count, 58)
        var worst: Float = 0
        for i in 0..<58 {
            let j = permutation[i]
            XCTAssertEqual(permutation[j], i, "involution at \(i)")
            let mirroredX = 2 * centre - mean[2 * i]
            func distance(_ k: Int) -> Float { hypot(mirroredX - mean[2 * k], mean[2 * i + 1] - mean[2 * k + 1]) }
            let nearest = (0..<58).min { distance($0) < distance($1) }!
            // The partner is the point nearest the mirror image, or within a hair of it (points on
            // the lips and nostrils sit 1 % of the width apart).
            XCTAssertLessThan(distance(j), distance(nearest) + 0.005, "point \(i): nearest \(nearest), partner \(j)")
            XCTAssertLessThan(distance(j), 0.015, "point \(i)")
            worst = max(worst, distance(j))
        }
        print("IMM mean shape: worst mirror-to-partner distance \(worst) of the width")
        // The normalising pair are the outer eye corners: far apart, level, mirror partners.
        let (a, b) = KeypointMarkup.imm58.normalisingPair!
        XCTAssertEqual(permutation[a], b)
        XCTAssertGreaterThan(abs(mean[2 * a] - mean[2 * b]), 0.15)
        let eyes = Array(13...28)
        XCTAssertEqual(mean[2 * a], eyes.map { mean[2 * $0] }.min()!, accuracy: 1e-6)
        XCTAssertEqual(mean[2 * b], eyes.map { mean[2 * $0] }.max()!, accuracy: 1e-6)
    }

    func testSplits() throws {
        let dataset = try IMMDataset(folder: immFolder)
        let random = dataset.randomSplit(testFraction: 0.2, seed: 1)
        XCTAssertEqual(random.train.count, 192); XCTAssertEqual(random.test.count, 48)
        XCTAssertEqual(Set(random.train.indices + random.test.indices).count, 240)
        XCTAssertEqual(dataset.randomSplit(testFraction: 0.2, seed: 1).test.indices, random.test.indices)
        XCTAssertNotEqual(dataset.randomSplit(testFraction: 0.2, seed: 2).test.indices, random.test.indices)
        let people = dataset.personSplit(testFraction: 0.2, seed: 1)
        XCTAssertEqual(people.train.count + people.test.count, 240)
        XCTAssertEqual(people.test.count, 48)  // 8 whole people of 6 views
        let trainPeople = Set((0..<people.train.count).map { people.train.person(at: $0) })
        let testPeople = Set((0..<people.test.count).map { people.test.person(at: $0) })
        XCTAssertTrue(trainPeople.isDisjoint(with: testPeople))
        XCTAssertEqual(trainPeople.count + testPeople.count, 40)
        XCTAssertTrue(try people.test.record(at: 0).source.contains("\(people.test.person(at: 0))-"))
    }

    func testMalformedShapeFiles() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try String(contentsOfFile: immFolder + "/01-1m.asf", encoding: .utf8)
        var lines = good.components(separatedBy: "\n")
        let countLine = lines.firstIndex(of: "58")!
        try ImageCodec.writePNG(GreyImage(width: 8, height: 6, fill: 0.5), to: dir.appendingPathComponent("01-1m.jpg").path)
        func check(_ text: String, line: Int?, contains: String) throws {
            let asf = dir.appendingPathComponent("01-1m.asf")
            try text.write(to: asf, atomically: true, encoding: .utf8)
            assertDataError(try IMMDataset(folder: dir.path), file: "01-1m.asf", line: line, contains: contains, contains)
        }
        var bad = lines; bad[countLine] = "fifty"
        try check(bad.joined(separator: "\n"), line: countLine + 1, contains: "number of points")
        bad = lines; bad[countLine] = "68"
        try check(bad.joined(separator: "\n"), line: countLine + 1, contains: "58")
        let point1 = lines.firstIndex { $0.contains("0.36267641") }!
        bad = lines; bad[point1] = bad[point1].replacingOccurrences(of: "0.36267641", with: "0.3x6")
        try check(bad.joined(separator: "\n"), line: point1 + 1, contains: "x of point 1")
        bad = lines; bad.remove(at: point1 + 3)
        try check(bad.joined(separator: "\n"), line: nil, contains: "point lines")
        // A missing photo: skipped and counted, or an error with the host-image line when strict.
        lines[lines.count - 2] = "nowhere.jpg"
        try lines.joined(separator: "\n").write(to: dir.appendingPathComponent("01-2m.asf"), atomically: true, encoding: .utf8)
        try good.write(to: dir.appendingPathComponent("01-1m.asf"), atomically: true, encoding: .utf8)
        let skips = SkipLog(warn: nil)
        XCTAssertEqual(try IMMDataset(folder: dir.path, options: DatasetOptions(skips: skips)).count, 1)
        XCTAssertEqual(skips.count, 1)
        assertDataError(try IMMDataset(folder: dir.path, options: DatasetOptions(strict: true)),
                        file: "01-2m.asf", line: lines.count - 1, contains: "nowhere.jpg")
    }
}

final class DlibXMLDatasetTests: XCTestCase {
    func testYTFaces68SkipsTheSixFacesOutsideTheirImages() throws {
        let skips = SkipLog(warn: nil)
        let dataset = try openDataset(path: ytFolder, options: DatasetOptions(skips: skips))
        XCTAssertEqual(dataset.count, 3456)
        XCTAssertEqual(skips.count, 6)
        XCTAssertTrue(skips.errors.allSatisfy { $0.file.hasSuffix("labels_train.xml") && $0.line != nil })
        XCTAssertEqual(dataset.markup, .ibug68)
        let record = try dataset.record(at: 0)
        XCTAssertEqual(record.box, Box(x: 45, y: 81, width: 59, height: 58))
        XCTAssertEqual(record.keypoints[0], 45); XCTAssertEqual(record.keypoints[1], 98)
        XCTAssertTrue(record.source.hasSuffix("images/Luis_Fonsi_21.jpg"))
        XCTAssertEqual((dataset as? PersonLabelled)?.person(at: 0), "Luis_Fonsi")
        assertDataError(try openDataset(path: ytFolder, options: DatasetOptions(strict: true)),
                        file: "labels_train.xml", line: 13686, contains: "Mariana_Ohata_22")
    }

    /// The standard 68-point flip permutation maps the mean shape of real faces onto itself.
    func testIBUG68FlipPermutationOnMeanShape() throws {
        let dataset = try DlibXMLDataset(xmlPath: ytFolder + "/labels_train.xml", options: DatasetOptions(skips: SkipLog(warn: nil)))
        var mean = [Float](repeating: 0, count: 136)
        let used = Array(stride(from: 0, to: dataset.count, by: 7))
        for i in used {
            let record = try dataset.record(at: i)
            let box = record.box!
            for k in 0..<136 { mean[k] += k % 2 == 0 ? (record.keypoints[k] - box.x) / box.width : (record.keypoints[k] - box.y) / box.height }
        }
        mean = mean.map { $0 / Float(used.count) }
        let centre = (0..<68).map { mean[2 * $0] }.reduce(0, +) / 68
        let permutation = KeypointMarkup.ibug68.flipPermutation
        for i in 0..<68 {
            let j = permutation[i]
            XCTAssertEqual(permutation[j], i)
            func distance(_ k: Int) -> Float { hypot(2 * centre - mean[2 * i] - mean[2 * k], mean[2 * i + 1] - mean[2 * k + 1]) }
            let nearest = (0..<68).min { distance($0) < distance($1) }!
            XCTAssertLessThan(distance(j), distance(nearest) + 0.01, "point \(i): nearest \(nearest), partner \(j)")
            XCTAssertLessThan(distance(j), 0.04, "point \(i)")
        }
        let (a, b) = KeypointMarkup.ibug68.normalisingPair!
        XCTAssertEqual(mean[2 * a], (36...47).map { mean[2 * $0] }.min()!, accuracy: 1e-6)
        XCTAssertEqual(mean[2 * b], (36...47).map { mean[2 * $0] }.max()!, accuracy: 1e-6)
    }

    func testMalformedXML() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let points = syntheticFace68(x: 15, y: 12, size: 50)
        try ImageCodec.writePNG(dottedImage(width: 90, height: 80, points: points), to: dir.appendingPathComponent("a.png").path)
        let path = dir.appendingPathComponent("labels.xml")
        func write(_ text: String) throws { try text.write(to: path, atomically: true, encoding: .utf8) }

        try write(xml(face("a.png", points: points) + face("a.png", points: points)))
        XCTAssertEqual(try DlibXMLDataset(xmlPath: path.path).count, 2)
        // Image lines: line 4 holds the first <image>, its box on line 5.
        try write(xml(face("a.png", points: points, count: 67)))
        assertDataError(try DlibXMLDataset(xmlPath: path.path), file: "labels.xml", line: 5, contains: "67")
        try write(xml(face("a.png", points: points, x: "1O.5")))
        assertDataError(try DlibXMLDataset(xmlPath: path.path), file: "labels.xml", line: 11, contains: "not a number")
        try write(xml(face("a.png", points: points)).replacingOccurrences(of: "</images>", with: "</imagez>"))
        assertDataError(try DlibXMLDataset(xmlPath: path.path), file: "labels.xml", line: 76, contains: "mismatched closing tag")
        try write(xml(face("a.png", points: points) + face("gone.jpg", points: points)))
        let skips = SkipLog(warn: nil)
        XCTAssertEqual(try DlibXMLDataset(xmlPath: path.path, options: DatasetOptions(skips: skips)).count, 1)
        XCTAssertEqual(skips.count, 1)
        assertDataError(try DlibXMLDataset(xmlPath: path.path, options: DatasetOptions(strict: true)),
                        file: "labels.xml", line: 77, contains: "gone.jpg")
        // A corrupt image is caught when the dataset is opened (its header is read then).
        try Data("junk".utf8).write(to: dir.appendingPathComponent("bad.jpg"))
        try write(xml(face("a.png", points: points) + face("bad.jpg", points: points)))
        assertDataError(try DlibXMLDataset(xmlPath: path.path, options: DatasetOptions(strict: true)),
                        file: "bad.jpg", line: nil, contains: "unsupported")
    }
}

final class PTSDatasetTests: XCTestCase {
    func testLoadsNestedFolderWithOneBasedCoordinates() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let truth = try writePTSFolder(at: dir, count: 4)
        let dataset = try openDataset(path: dir.path)
        XCTAssertTrue(dataset is PTSDataset)
        XCTAssertEqual(dataset.count, 4)
        XCTAssertEqual(dataset.markup, .ibug68)
        // Sorted by path: afw/face0, afw/face2, helen/trainset/face1, helen/trainset/face3.
        let record = try dataset.record(at: 2)
        XCTAssertTrue(record.source.hasSuffix("helen/trainset/face1.png"))
        for k in 0..<136 { XCTAssertEqual(record.keypoints[k], truth[1][k], accuracy: 1e-4) }
        let xs = stride(from: 0, to: 136, by: 2).map { truth[1][$0] }
        XCTAssertEqual(record.box!.x, xs.min()!, accuracy: 1e-4)
        XCTAssertEqual(record.box!.width, xs.max()! - xs.min()!, accuracy: 1e-4)
    }

    func testMalformedPTS() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let truth = try writePTSFolder(at: dir, count: 1)
        let pts = dir.appendingPathComponent("afw/face0.pts")
        let good = ptsText(truth[0])
        func check(_ text: String, line: Int, contains: String) throws {
            try text.write(to: pts, atomically: true, encoding: .utf8)
            assertDataError(try PTSDataset(folder: dir.path), file: "face0.pts", line: line, contains: contains)
        }
        try check(good.replacingOccurrences(of: "version: 1", with: "verison: 1"), line: 1, contains: "version")
        try check(good.replacingOccurrences(of: "n_points:  68", with: "n_points:  5"), line: 2, contains: "expected 68")
        var lines = good.components(separatedBy: "\n")
        lines[10] = "12.5 abc"
        try check(lines.joined(separator: "\n"), line: 11, contains: "not a number")
        lines = good.components(separatedBy: "\n"); lines.remove(at: 30)
        try check(lines.joined(separator: "\n"), line: 71, contains: "67 points")
        lines = good.components(separatedBy: "\n"); lines.insert("1 2", at: 30)
        try check(lines.joined(separator: "\n"), line: 72, contains: "more points")
        // Missing image: skipped (counted) or, strict, an error naming the .pts file.
        try good.write(to: pts, atomically: true, encoding: .utf8)
        try good.write(to: dir.appendingPathComponent("afw/lonely.pts"), atomically: true, encoding: .utf8)
        let skips = SkipLog(warn: nil)
        XCTAssertEqual(try PTSDataset(folder: dir.path, options: DatasetOptions(skips: skips)).count, 1)
        XCTAssertEqual(skips.count, 1)
        assertDataError(try PTSDataset(folder: dir.path, options: DatasetOptions(strict: true)),
                        file: "lonely.pts", line: nil, contains: "no image")
    }

    func testOpenDatasetDetection() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertTrue(try openDataset(path: immFolder) is IMMDataset)
        XCTAssertTrue(try openDataset(path: ytFolder + "/labels_train.xml", options: DatasetOptions(skips: SkipLog(warn: nil))) is DlibXMLDataset)
        assertDataError(try openDataset(path: dir.path), file: dir.lastPathComponent, line: nil, contains: "no dataset")
        assertDataError(try openDataset(path: dir.path + "/nothing"), file: "nothing", line: nil)
        assertDataError(try openDataset(path: "synthetic:zero"), file: "synthetic:zero", line: nil)
    }
}

/// A dlib XML document around `boxes` (its first <image> on line 4).
func xml(_ boxes: String) -> String {
    "<?xml version='1.0' encoding='ISO-8859-1'?>\n<dataset>\n<images>\n\(boxes)</images>\n</dataset>\n"
}

func face(_ file: String, points: [Float], count: Int = 68, x: String? = nil) -> String {
    var text = "  <image file='\(file)'>\n    <box top='10' left='10' width='50' height='50'>\n"
    for i in 0..<count {
        let px = (i == 5 ? x : nil) ?? "\(points[2 * i])"
        text += "      <part name='\(String(format: "%02d", i))' x='\(px)' y='\(points[2 * i + 1])'/>\n"
    }
    return text + "    </box>\n  </image>\n"
}

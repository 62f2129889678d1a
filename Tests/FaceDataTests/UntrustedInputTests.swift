import FaceData
import Foundation
import TestSupport
import XCTest

/// Hostile files as a downloaded dataset can hold them: decompression bombs, impossible boxes,
/// and the inputs Scripts/fuzz found crashes or wrong errors with (kept here as regression tests).
final class UntrustedInputTests: XCTestCase {
    /// A 60-byte PNG whose header claims 60000x60000 pixels (14 GB as RGBA); no pixel data.
    static let pngBomb: Data = {
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        bytes += TinyPNG.chunk("IHDR", TinyPNG.bigEndian(60000) + TinyPNG.bigEndian(60000) + [8, 2, 0, 0, 0])
        bytes += TinyPNG.chunk("IDAT", [0x78, 0x01, 0x01])
        bytes += TinyPNG.chunk("IEND", [])
        return Data(bytes)
    }()

    /// A real JPEG from ../shared/data with its frame header (SOF) patched to 65000x65000 pixels.
    static func jpegBomb() throws -> Data {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ytFolder + "/images/Chris_Cooper_42.jpg")))
        guard let sof = (0 ..< bytes.count - 9).first(where: { bytes[$0] == 0xFF && (0xC0 ... 0xC2).contains(bytes[$0 + 1]) }) else {
            throw XCTSkip("no SOF marker")
        }
        // SOF: marker, length (2), precision (1), height (2), width (2), big-endian.
        bytes[sof + 5] = 0xFD; bytes[sof + 6] = 0xE8; bytes[sof + 7] = 0xFD; bytes[sof + 8] = 0xE8
        return Data(bytes)
    }

    func testBombsAreRefusedFromTheHeaderWithinMilliseconds() throws {
        XCTAssertEqual(Self.pngBomb.count, 60)
        for (name, data) in [("bomb.png", Self.pngBomb), ("bomb.jpg", try Self.jpegBomb())] {
            let start = Date()
            assertDataError(try ImageCodec.decodeGrey(data, source: name), file: name, line: nil, contains: "--max-pixels")
            XCTAssertLessThan(Date().timeIntervalSince(start), 0.5, name)
        }
        assertDataError(try ImageCodec.decodeGrey(Self.pngBomb, source: "bomb.png"), file: "bomb.png", line: nil, contains: "60000x60000")
        assertDataError(try ImageCodec.decodeGrey(try Self.jpegBomb(), source: "bomb.jpg"), file: "bomb.jpg", line: nil, contains: "65000x65000")
        // The limit is a parameter: a real 640x480 face passes the default and fails a smaller one.
        let face = try Data(contentsOf: URL(fileURLWithPath: immFolder + "/01-1m.jpg"))
        XCTAssertEqual(try ImageCodec.decodeGrey(face, source: "face.jpg").width, 640)
        assertDataError(try ImageCodec.decodeGrey(face, source: "face.jpg", maxPixels: 640 * 480 - 1), file: "face.jpg", line: nil, contains: "640x480")
    }

    /// A dlib XML naming a bomb beside a real face: `fkp data stats` skips the bomb when it opens
    /// the dataset (from its header), stays small and fast; --strict stops with one line.
    func testDataStatsOnABombStaysSmallAndFast() throws {
        let dir = TestPaths.temporaryDirectory("bomb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let points = syntheticFace68(x: 15, y: 12, size: 50)
        try ImageCodec.writePNG(dottedImage(width: 90, height: 80, points: points), to: dir.appendingPathComponent("a.png").path)
        try Self.pngBomb.write(to: dir.appendingPathComponent("bomb.png"))
        try Self.jpegBomb().write(to: dir.appendingPathComponent("bomb.jpg"))
        let xmlPath = dir.appendingPathComponent("labels.xml").path
        try xml(face("a.png", points: points) + face("bomb.png", points: points) + face("bomb.jpg", points: points))
            .write(toFile: xmlPath, atomically: true, encoding: .utf8)
        let fkp = TestPaths.product("fkp").path

        let run = try ChildUsage.run(fkp, ["data", "stats", xmlPath])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("samples: 1 keypoints: 68 skipped: 2"), run.stdout)
        XCTAssertTrue(run.stderr.contains("bomb.png") && run.stderr.contains("bomb.jpg"), run.stderr)
        XCTAssertLessThan(run.maxRSSMegabytes, 200, "peak RSS")
        XCTAssertLessThan(run.seconds, 1, "wall time")
        print("fkp data stats on the bombs: \(run.maxRSSMegabytes) MB peak RSS, \(String(format: "%.2f", run.seconds)) s")

        let strict = try ChildUsage.run(fkp, ["data", "stats", xmlPath, "--strict"])
        XCTAssertEqual(strict.status, 1)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("bomb.png") && strict.stderr.contains("--max-pixels"), strict.stderr)
        // The flag reaches the loader: with a limit below 90x80 the real face is refused too.
        let tight = try ChildUsage.run(fkp, ["data", "stats", xmlPath, "--max-pixels", "7000"])
        XCTAssertEqual(tight.status, 1, tight.stdout)
        XCTAssertTrue(tight.stderr.contains("no usable faces"), tight.stderr)
    }

    /// Impossible boxes are bad samples like keypoints outside the image: skipped with a warning
    /// and counted, or with --strict an error naming the file and the box's line.
    func testImpossibleBoxesAreSkippedOrStrictErrors() throws {
        let dir = TestPaths.temporaryDirectory("boxes")
        defer { try? FileManager.default.removeItem(at: dir) }
        let points = syntheticFace68(x: 15, y: 12, size: 50)
        try ImageCodec.writePNG(dottedImage(width: 90, height: 80, points: points), to: dir.appendingPathComponent("a.png").path)
        let path = dir.appendingPathComponent("labels.xml").path
        func box(_ attributes: String) -> String {
            face("a.png", points: points).replacingOccurrences(of: "top='10' left='10' width='50' height='50'", with: attributes)
        }
        let cases = [("top='10' left='10' width='-50' height='50'", "width -50.0"),
                     ("top='10' left='10' width='0' height='0'", "both must be positive"),
                     ("top='10' left='200' width='50' height='50'", "entirely outside the 90x80 image"),
                     ("top='-90' left='10' width='50' height='50'", "entirely outside")]
        for (attributes, message) in cases {
            // Line 4 holds the first <image>; the bad one is the second face, its box on line 77.
            try xml(face("a.png", points: points) + box(attributes)).write(toFile: path, atomically: true, encoding: .utf8)
            let skips = SkipLog(warn: nil)
            XCTAssertEqual(try DlibXMLDataset(xmlPath: path, options: DatasetOptions(skips: skips)).count, 1, attributes)
            XCTAssertEqual(skips.count, 1, attributes)
            assertDataError(try DlibXMLDataset(xmlPath: path, options: DatasetOptions(strict: true)),
                            file: "labels.xml", line: 77, contains: message)
        }
    }

    /// Inputs Scripts/fuzz found (reduced by hand): each crashed `fkp data stats` inside
    /// Foundation's XMLParser, or gave a multi-line error. Now each is one line naming the file.
    func testFuzzFoundXMLInputsGiveOneLineErrors() throws {
        let dir = TestPaths.temporaryDirectory("xmlfuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inputs: [(String, [UInt8])] = [
            // Element names that are not UTF-8: XMLParser trapped (illegal instruction).
            ("badname.xml", Array("<?xml version='1.0'?>\n<dat".utf8) + [0xFF, 0xFF] + Array(">\n</dat>\n".utf8)),
            ("badversion.xml", Array("<?xml version='1,0' encoding='ISO-8859-1'?>\n<dat".utf8) + [0xFF, 0xFF] + Array("height='58'>\n</dat>\n".utf8)),
            // A processing instruction without data: XMLParser called strlen(NULL).
            ("pi.xml", Array("<?xml version='1.0'?>\n<?foo?>\n<dataset/>\n".utf8)),
            // An encoding name running over a line break: the error quoted it, breaking the line.
            ("encoding.xml", Array("<?xml version='1.0' encoding='ISO-8859\n".utf8) + [0xFF, 0xFF] + Array("'?>\n<dataset/>\n".utf8)),
        ]
        for (name, bytes) in inputs {
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            assertDataError(try DlibXMLDataset(xmlPath: path), file: name, line: nil, name)
        }
        // Latin-1 file names (dlib writes ISO-8859-1) still reach the image lookup intact.
        let points = syntheticFace68(x: 15, y: 12, size: 50)
        try ImageCodec.writePNG(dottedImage(width: 90, height: 80, points: points), to: dir.appendingPathComponent("caf\u{E9}.png").path)
        let latin1 = xml(face("caf\u{E9}.png", points: points)).replacingOccurrences(of: "encoding='UTF-8'", with: "encoding='ISO-8859-1'")
        let path = dir.appendingPathComponent("latin1.xml").path
        try latin1.data(using: .isoLatin1)!.write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try DlibXMLDataset(xmlPath: path).count, 1)
    }

    /// XML entity tricks stay inert: XMLParser neither expands a "billion laughs" nest of internal
    /// entities into the attribute nor reads an external one (a file of the machine).
    func testXMLEntitiesAreNotExpanded() throws {
        let dir = TestPaths.temporaryDirectory("entities")
        defer { try? FileManager.default.removeItem(at: dir) }
        var laughs = "<?xml version='1.0'?>\n<!DOCTYPE d [\n <!ENTITY l0 'lollollollollollollollollollol'>\n"
        for level in 1 ... 9 { laughs += " <!ENTITY l\(level) '" + String(repeating: "&l\(level - 1);", count: 10) + "'>\n" }
        laughs += "]>\n<dataset><images><image file='&l9;'><box top='1' left='1' width='5' height='5'/></image></images></dataset>\n"
        let external = "<?xml version='1.0'?>\n<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>\n"
            + "<dataset><images><image file='&x;'/></images></dataset>\n"
        for (name, text) in [("laughs.xml", laughs), ("external.xml", external)] {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let start = Date()
            assertDataError(try DlibXMLDataset(xmlPath: path), file: name, line: nil, contains: "lacks the 'file' attribute")
            XCTAssertLessThan(Date().timeIntervalSince(start), 0.5, name)
        }
    }

    /// Found by Scripts/fuzz: "\r\n" is one Character in Swift, so a .pts file with Windows line
    /// endings was one long line and failed; it now reads like the same file with "\n".
    func testWindowsLineEndingsInPTS() throws {
        let dir = TestPaths.temporaryDirectory("crlf")
        defer { try? FileManager.default.removeItem(at: dir) }
        let points = syntheticFace68(x: 15, y: 12, size: 50)
        try ImageCodec.writePNG(dottedImage(width: 90, height: 80, points: points), to: dir.appendingPathComponent("a.png").path)
        try ptsText(points).replacingOccurrences(of: "\n", with: "\r\n")
            .write(to: dir.appendingPathComponent("a.pts"), atomically: true, encoding: .utf8)
        let dataset = try PTSDataset(folder: dir.path)
        XCTAssertEqual(dataset.count, 1)
        XCTAssertEqual(try dataset.record(at: 0).keypoints.count, 136)
    }
}

/// Runs a child under GNU time (Debian package `time`) for its own peak RSS: the kernel counts
/// the memory of the process that spawned it (this test process) into a spawned child's
/// ru_maxrss until exec, so the test cannot read it with wait4 itself; time forks afresh.
enum ChildUsage {
    struct Result { var status: Int32; var stdout: String; var stderr: String; var maxRSSMegabytes: Int; var seconds: Double }

    static func run(_ executable: String, _ arguments: [String]) throws -> Result {
        let report = TestPaths.temporaryDirectory("usage").appendingPathComponent("usage")
        defer { try? FileManager.default.removeItem(at: report.deletingLastPathComponent()) }
        let r = try ProcessRunner.run("/usr/bin/time", ["-o", report.path, "-f", "%M %e", executable] + arguments, timeout: 60)
        let fields = try String(contentsOf: report, encoding: .utf8).split(whereSeparator: \.isWhitespace).suffix(2)
        guard fields.count == 2, let kilobytes = Int(fields.first!), let seconds = Double(fields.last!) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return Result(status: r.status, stdout: r.stdout, stderr: r.stderr, maxRSSMegabytes: kilobytes / 1024, seconds: seconds)
    }
}

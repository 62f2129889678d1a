import Foundation
import TestSupport
import XCTest

/// Scripts/plot-nme-vs-time on a real tiny run folder and a dlib CSV.
final class PlotScriptTests: XCTestCase {
    let script = TestPaths.repoRoot.appendingPathComponent("Scripts/plot-nme-vs-time").path

    func python(_ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run("/usr/bin/env", ["python3"] + arguments, timeout: 120)
    }

    func testPlotsRunsAndDlibOrSaysMatplotlibIsMissing() throws {
        let dir = TestPaths.temporaryDirectory("plot")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = dir.appendingPathComponent("tiny-run")
        let train = try ProcessRunner.run(TestPaths.product("fkp").path,
                                          ["train", "--data", "synthetic:40", "--batch", "8", "--epochs", "3", "--steps-per-epoch", "2",
                                           "--threads", "1", "--quiet", "--no-pictures", "--out", run.path], timeout: 240)
        XCTAssertEqual(train.status, 0, train.output)
        let dlib = dir.appendingPathComponent("dlib.csv")
        try "label,minutes,nme,failure_rate\ncascade 10,9.5,0.037,0.010\ndefault,31,0.035,0.008\n".write(to: dlib, atomically: true, encoding: .utf8)
        let png = dir.appendingPathComponent("images/nme_vs_time.png")
        let arguments = [script, run.path, "--dlib", dlib.path, "--out", png.path]

        // The table comes first, with the run's 3 epochs and both dlib rows.
        let r = try python(arguments)
        XCTAssertTrue(r.stdout.contains("tiny-run"), r.output)
        XCTAssertTrue(r.stdout.contains("dlib cascade 10") && r.stdout.contains("dlib default"), r.output)
        let row = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("tiny-run") }, r.output)
        XCTAssertEqual(row.split(separator: " ")[1], "3")
        let hasMatplotlib = try python(["-c", "import matplotlib"]).status == 0
        if hasMatplotlib {
            XCTAssertEqual(r.status, 0, r.output)
            let bytes = try Data(contentsOf: png)
            XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            XCTAssertGreaterThan(bytes.count, 10_000)
        }
        // Without matplotlib (-S: no site packages) it says so, exits non-zero and writes nothing.
        try? FileManager.default.removeItem(at: png)
        let bare = try python(["-S"] + arguments)
        XCTAssertNotEqual(bare.status, 0)
        XCTAssertTrue(bare.stderr.contains("matplotlib is not installed"), bare.output)
        XCTAssertTrue(bare.stdout.contains("tiny-run"), bare.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: png.path))

        // RUN@IMAGES_PER_S: each epoch timed as its images at that speed (a run that shared the machine).
        var images = 0.0
        for line in try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n") {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            images += try XCTUnwrap(record["images_per_s"] as? Double) * XCTUnwrap(record["seconds"] as? Double)
        }
        let rated = try python(["-S", script, run.path + "@2.5", "--out", png.path])
        let ratedRow = try XCTUnwrap(rated.stdout.split(separator: "\n").first { $0.hasPrefix("tiny-run") }, rated.output)
        XCTAssertEqual(try XCTUnwrap(Double(ratedRow.split(separator: " ")[2])), images / 2.5 / 60, accuracy: 0.006, rated.output)
        let badRate = try python([script, run.path + "@fast", "--out", png.path])
        XCTAssertNotEqual(badRate.status, 0)
        XCTAssertTrue(badRate.stderr.contains("@fast: the speed after @ must be a number"), badRate.output)

        // Bad input: a clear message naming the file (and line).
        try "label,minutes,nme\nx,zero,0.1\n".write(to: dlib, atomically: true, encoding: .utf8)
        let bad = try python(arguments)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("\(dlib.path):2:"), bad.output)
        let missing = try python([script, dir.path, "--out", png.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("metrics.jsonl: no such file"), missing.output)
    }
}

import Foundation
import Training
import XCTest

/// metrics.jsonl never fails on a non-finite value: it writes JSON null and keeps the line.
final class MetricsLogTests: XCTestCase {
    func testNonFiniteValuesAreWrittenAsNullAndReadBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = EpochRecord(epoch: 1, step: 3, train_loss: 0.5, val_loss: 0.25, images_per_s: 10, lr: 1e-3,
                               val_nme: 0.05, val_pixel_error: 2, val_failure_rate: 0, seconds: 4)
        let bad = EpochRecord(epoch: 2, step: 6, train_loss: .nan, val_loss: -.infinity, images_per_s: .infinity, lr: 1e-3,
                              val_nme: .nan, val_pixel_error: nil, val_failure_rate: .nan, seconds: 4)
        try MetricsLog.append(good, to: dir)
        try MetricsLog.append(bad, to: dir)
        let lines = try String(contentsOf: dir.appendingPathComponent(MetricsLog.fileName), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[1], #"{"epoch":2,"images_per_s":null,"lr":0.001,"seconds":4,"step":6,"train_loss":null,"val_failure_rate":null,"val_loss":null,"val_nme":null}"#)
        // Python's json (and any JSON reader) parses it.
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)))
        let read = MetricsLog.read(dir)
        XCTAssertEqual(read.count, 2)
        XCTAssertEqual(read[0].val_nme, 0.05)
        XCTAssertTrue(read[1].train_loss.isNaN && read[1].images_per_s.isNaN)
        XCTAssertNil(read[1].val_nme)
        XCTAssertNil(read[1].val_pixel_error)
    }
}

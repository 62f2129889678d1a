import Foundation
import SwiftProtobuf
import TensorBoard
import XCTest

/// The TFRecord framing and the events fkp writes, read back record by record (the Python test
/// reads a whole run with TensorBoard's own reader).
final class EventFileTests: XCTestCase {
    /// The published check value of CRC-32C (RFC 3720, appendix B.4).
    func testCRC32CCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // 32 zero bytes (RFC 3720 B.4).
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
    }

    func testEventsReadBackWithValidChecksums() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try EventFile(directory: dir, wallTime: 1_700_000_000.5)
        try file.scalars([("train_loss", 0.25), ("lr", 1e-3)], step: 3)
        try file.image(tag: "picture", png: Data([0x89, 0x50, 0x4E, 0x47]), width: 2, height: 1, channels: 3, step: 3)
        try file.restart(at: 4)
        XCTAssertTrue(file.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000.500000."))

        let events = try readRecords(Data(contentsOf: file.url)).map { try Tensorflow_Event(serializedBytes: $0) }
        XCTAssertEqual(events.count, 4)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[0].wallTime, 1_700_000_000.5)
        XCTAssertEqual(events[1].step, 3)
        XCTAssertEqual(events[1].summary.value.map(\.tag), ["train_loss", "lr"])
        XCTAssertEqual(events[1].summary.value.map(\.simpleValue), [0.25, Float(1e-3)])
        XCTAssertEqual(events[2].summary.value[0].image.encodedImageString, Data([0x89, 0x50, 0x4E, 0x47]))
        XCTAssertEqual(events[2].summary.value[0].image.width, 2)
        XCTAssertEqual(events[3].sessionLog.status, .start)
        XCTAssertEqual(events[3].step, 4)
    }

    /// Splits TFRecord framing, checking both masked CRCs of every record.
    func readRecords(_ data: Data) throws -> [Data] {
        let bytes = [UInt8](data)
        func word<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
            bytes[offset ..< offset + MemoryLayout<T>.size].reversed().reduce(0) { $0 << 8 | T($1) }
        }
        var records: [Data] = [], offset = 0
        while offset < bytes.count {
            let length = Int(word(UInt64.self, at: offset))
            XCTAssertEqual(word(UInt32.self, at: offset + 8), CRC32C.masked(bytes[offset ..< offset + 8]), "length CRC at \(offset)")
            let payload = bytes[offset + 12 ..< offset + 12 + length]
            XCTAssertEqual(word(UInt32.self, at: offset + 12 + length), CRC32C.masked(payload), "data CRC at \(offset)")
            records.append(Data(payload))
            offset += 12 + length + 4
        }
        XCTAssertEqual(offset, bytes.count)
        return records
    }
}

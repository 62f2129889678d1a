import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

final class CheckpointFileTests: XCTestCase {
    func sample() -> SafeTensors {
        var t = SafeTensors(metadata: ["format": "test", "model": "{\"name\":\"x\"}"])
        let w: [Float] = (0 ..< 12).map { Float($0) * 0.5 - 1 }
        w.withUnsafeBufferPointer { t.add("l1.0.weight", shape: [3, 4], floats: $0) }
        t.add("bn.num_batches_tracked", shape: [], int64s: [7])
        [Float(3)].withUnsafeBufferPointer { t.add("fc.bias", shape: [1], floats: $0) }
        return t
    }

    func testRoundTripThroughZstdFile() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(CheckpointFile.name(step: 5))
        try CheckpointFile.write(sample(), to: url)
        let back = try CheckpointFile.read(url)
        XCTAssertEqual(back.metadata["format"], "test")
        XCTAssertEqual(back.floats("l1.0.weight"), (0 ..< 12).map { Float($0) * 0.5 - 1 })
        XCTAssertEqual(back.entries["l1.0.weight"]?.shape, [3, 4])
        XCTAssertEqual(back.int64s("bn.num_batches_tracked"), [7])
        XCTAssertEqual(back.floats("fc.bias"), [3])
    }

    /// The file is read by an independent implementation: the `zstd` tool and Python's standard
    /// library (struct + json), following the safetensors specification.
    func testFileReadsWithZstdToolAndPython() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd") else { throw XCTSkip("zstd tool not installed") }
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors.zst")
        try CheckpointFile.write(sample(), to: url)
        let unz = try ProcessRunner.run("/usr/bin/zstd", ["-d", "-q", "-f", url.path, "-o", dir.appendingPathComponent("c.safetensors").path])
        XCTAssertEqual(unz.status, 0, unz.output)
        let script = """
        import json, struct, sys
        b = open(sys.argv[1], 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        h = json.loads(b[8:8+n]); data = b[8+n:]
        w = h['l1.0.weight']; s, e = w['data_offsets']
        vals = struct.unpack('<12f', data[s:e])
        k = h['bn.num_batches_tracked']; ks, ke = k['data_offsets']
        print(w['dtype'], w['shape'], vals[0], vals[-1], k['dtype'], struct.unpack('<q', data[ks:ke])[0], h['__metadata__']['format'])
        """
        let py = try ProcessRunner.run("/usr/bin/env", ["python3", "-c", script, dir.appendingPathComponent("c.safetensors").path])
        XCTAssertEqual(py.status, 0, py.output)
        XCTAssertEqual(py.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "F32 [3, 4] -1.0 4.5 I64 7 test")
    }

    func testCorruptTruncatedAndForeignFilesAreRejectedWithTheirPath() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("good.safetensors.zst")
        try CheckpointFile.write(sample(), to: good)
        let bytes = try Data(contentsOf: good)

        let truncated = dir.appendingPathComponent("truncated.safetensors.zst")
        try bytes.prefix(bytes.count - 9).write(to: truncated)
        var corrupt = bytes
        corrupt[corrupt.count / 2] ^= 0x5A
        let corrupted = dir.appendingPathComponent("corrupt.safetensors.zst")
        try corrupt.write(to: corrupted)
        let foreign = dir.appendingPathComponent("foreign.safetensors.zst")
        try Data("hello, this is not a checkpoint".utf8).write(to: foreign)
        let missing = dir.appendingPathComponent("missing.safetensors.zst")

        for url in [truncated, corrupted, foreign, missing] {
            XCTAssertThrowsError(try CheckpointFile.read(url), url.lastPathComponent) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix(url.path), text)
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
    }

    func testLatestAndKeepLastK() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for step in [10, 20, 30, 40] {
            let url = dir.appendingPathComponent(CheckpointFile.name(step: step))
            try CheckpointFile.write(sample(), to: url)
            try CheckpointFile.updateLatest(url, keep: 2)
        }
        XCTAssertEqual(CheckpointFile.list(in: dir).map(\.lastPathComponent),
                       [CheckpointFile.name(step: 30), CheckpointFile.name(step: 40)])
        XCTAssertEqual(try CheckpointFile.resolve(dir.path)?.lastPathComponent, CheckpointFile.name(step: 40))
        XCTAssertThrowsError(try CheckpointFile.resolve(dir.appendingPathComponent("nope").path))
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertNil(try CheckpointFile.resolve(empty.path))
    }
}

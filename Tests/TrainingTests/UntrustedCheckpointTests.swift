import Checkpoints
import Foundation
import TestSupport
import Training
import XCTest

/// Checkpoints from other people: frames that claim or expand to absurd sizes, safetensors headers
/// that do not add up, and what `--checkpoint` accepts (a file, `latest`, a run folder).
final class UntrustedCheckpointTests: XCTestCase {
    /// A zstd frame header declaring `size` content bytes (single segment, no checksum), then one
    /// empty last raw block.
    func frame(declaring size: UInt64) -> [UInt8] {
        [0x28, 0xB5, 0x2F, 0xFD, 0xE0] + withUnsafeBytes(of: size.littleEndian) { Array($0) } + [0x01, 0x00, 0x00]
    }

    /// A frame with no declared size: `blocks` RLE blocks of 128 KiB of zeros (40 bytes expanding
    /// to `blocks` x 128 KiB), as a streaming writer would leave it.
    func undeclaredZeros(blocks: Int) -> [UInt8] {
        var bytes: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38]   // no size; window 2^17
        for b in 0 ..< blocks {
            let header = UInt32(128 << 10) << 3 | 1 << 1 | (b == blocks - 1 ? 1 : 0)   // RLE, last?
            bytes += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF), 0x00]
        }
        return bytes
    }

    func testZstdSizeLimits() throws {
        let start = Date()
        XCTAssertThrowsError(try frame(declaring: 1 << 40).withUnsafeBytes { try Zstd.decompress($0) }) {
            XCTAssertTrue("\($0)".contains("1099511627776 bytes, over the limit"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
        // Through the checkpoint reader the message names the file.
        XCTAssertThrowsError(try CheckpointFile.parse(frame(declaring: UInt64.max - 5), path: "huge.safetensors.zst")) {
            XCTAssertTrue("\($0)".hasPrefix("huge.safetensors.zst: ") && "\($0)".contains("over the limit"), "\($0)")
        }
        // No declared size: the cap is enforced while streaming.
        let zeros = undeclaredZeros(blocks: 10)
        XCTAssertEqual(try zeros.withUnsafeBytes { try Zstd.decompress($0, maxBytes: 2 << 20) }.count, 10 << 17)
        XCTAssertThrowsError(try zeros.withUnsafeBytes { try Zstd.decompress($0, maxBytes: 1 << 20) }) {
            XCTAssertTrue("\($0)".contains("over the limit of 1048576"), "\($0)")
        }
    }

    /// A safetensors buffer from a header object and raw data.
    func safetensors(_ header: [String: Any], data: [UInt8], length: UInt64? = nil) throws -> [UInt8] {
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return withUnsafeBytes(of: (length ?? UInt64(json.count)).littleEndian) { Array($0) } + Array(json) + data
    }

    func entry(_ shape: [Int], _ begin: Int, _ end: Int, dtype: String = "F32") -> [String: Any] {
        ["dtype": dtype, "shape": shape, "data_offsets": [begin, end]]
    }

    func testSafeTensorsHeaderChecks() throws {
        let eight = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(try SafeTensors(parsing: safetensors(["a": entry([2], 0, 8)], data: eight)).floats("a"), [0, 0])
        let bad: [(String, [UInt8])] = [
            ("over the limit", try safetensors([:], data: [], length: 200_000_000)),
            ("exceeds the file", try safetensors([:], data: [], length: 1_000)),
            ("impossible shape", try safetensors(["a": entry([-2, -1], 0, 8)], data: eight)),
            ("impossible shape", try safetensors(["a": entry([1 << 40, 1 << 40], 0, 8)], data: eight)),
            ("do not fit", try safetensors(["a": entry([2], 0, 12)], data: eight)),
            ("do not fit", try safetensors(["a": entry([2], 8, 0)], data: eight)),
            ("overlapping", try safetensors(["a": entry([2], 0, 8), "b": entry([1], 4, 8)], data: eight)),
            ("overlapping", try safetensors(["a": entry([1], 4, 8)], data: eight)),
            ("buffer holds 8 bytes", try safetensors(["a": entry([1], 0, 4)], data: eight)),
            ("unsupported dtype", try safetensors(["a": entry([2], 0, 8, dtype: "F16")], data: eight)),
            ("__metadata__", try safetensors(["__metadata__": ["n": 1]], data: [])),
        ]
        for (message, bytes) in bad {
            XCTAssertThrowsError(try SafeTensors(parsing: bytes), message) {
                XCTAssertTrue("\($0)".contains(message), "\($0) should say \(message)")
            }
        }
    }

    /// Found by Scripts/fuzz: an F32 tensor read as Int64 (num_batches_tracked saved as a float)
    /// trapped on a value outside Int64's range; such a tensor now reads as nil.
    /// Tensor data starts wherever the header ends: at an odd offset here. Values are read with
    /// unaligned loads and byte copies.
    func testTensorsAtUnalignedOffsetsReadCorrectly() throws {
        let values: [Float] = [1.5, -2, 3.25]
        let data = values.withUnsafeBytes { Array($0) }
        var header = try JSONSerialization.data(withJSONObject: ["a": entry([3], 0, 12)], options: [.sortedKeys])
        while (8 + header.count) % 4 != 1 { header.append(0x20) }   // JSON allows trailing spaces
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + Array(header) + data
        let file = try SafeTensors(parsing: bytes)
        XCTAssertEqual(file.floats("a"), values)
        var copied = [Float](repeating: 0, count: 3)
        XCTAssertTrue(copied.withUnsafeMutableBufferPointer { file.copy("a", into: $0) })
        XCTAssertEqual(copied, values)
        XCTAssertNil(file.int64s("a"), "1.5 is no whole number")
    }

    func testInt64sOfFloatTensorDoesNotTrap() throws {
        var file = SafeTensors()
        [Float(7), Float(-1.7e38)].withUnsafeBufferPointer { file.add("huge", shape: [2], floats: $0) }
        [Float(7)].withUnsafeBufferPointer { file.add("seven", shape: [1], floats: $0) }
        let back = try SafeTensors(parsing: try file.serialized())
        XCTAssertNil(back.int64s("huge"))
        XCTAssertEqual(back.int64s("seven"), [7])
    }

    /// Found by Scripts/fuzz metadata: a format-1 position whose batch times global_batch overflows
    /// trapped in TrainingCheckpoint.contents; it is now an error naming the file.
    func testOverflowingPositionInMetadata() throws {
        let position = #"{"batchInEpoch":5,"epoch":1,"epochImages":0,"epochLossSum":0,"epochSeconds":0,"epochSteps":0,"randomStates":[[1]],"step":1,"worldSize":1}"#
        let file = SafeTensors(metadata: ["format": CheckpointFile.formatName, "format_version": "1",
                                          "global_batch": "000000000008850994360374555079", "position": position])
        XCTAssertThrowsError(try TrainingCheckpoint.contents(of: file, path: "fuzz.safetensors.zst")) {
            XCTAssertTrue("\($0)".hasPrefix("fuzz.safetensors.zst: metadata 'position' is malformed"), "\($0)")
        }
    }

    /// Resume trusted a checkpoint's generator states and counts: a state of 3 words hit a
    /// precondition, and epoch images × world size could overflow. Each is a one-line error naming
    /// the file.
    func testMalformedPositionInMetadata() throws {
        let good = ["batchInEpoch": 1, "epoch": 0, "epochImages": 8, "epochLossSum": 0.5, "epochSeconds": 1, "epochSteps": 1,
                    "globalBatch": 8, "sampleInEpoch": 8, "randomStates": [[1, 2, 3, 4]], "step": 1, "worldSize": 1] as [String: Any]
        let cases: [(String, Any, String)] = [
            ("randomStates", [[1, 2, 3]], "a random generator state has 3 words, not 4"),
            ("epochImages", Int.max / 2, "on 4 ranks"), ("step", -1, "step -1 is negative"), ("worldSize", 0, "worldSize 0"),
        ]
        for (key, value, message) in cases {
            var position = good
            position[key] = value
            if key == "epochImages" { position["worldSize"] = 4 }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: position, options: [.sortedKeys]), as: UTF8.self)
            let file = SafeTensors(metadata: ["format": CheckpointFile.formatName, "format_version": "2", "position": json])
            XCTAssertThrowsError(try TrainingCheckpoint.contents(of: file, path: "bad.safetensors.zst"), key) {
                XCTAssertTrue("\($0)".hasPrefix("bad.safetensors.zst: metadata 'position' is malformed") && "\($0)".contains(message), "\($0)")
            }
        }
    }

    /// `CheckpointFile.resolve` serves train --resume, eval and predict alike.
    func testResolveFileLatestAndRunFolder() throws {
        let dir = TestPaths.temporaryDirectory("resolve")
        defer { try? FileManager.default.removeItem(at: dir) }
        let older = dir.appendingPathComponent(CheckpointFile.name(step: 10)), newer = dir.appendingPathComponent(CheckpointFile.name(step: 20))
        for url in [older, newer] { try Data("x".utf8).write(to: url) }
        let latest = dir.appendingPathComponent("latest")
        try Data((older.lastPathComponent + "\n").utf8).write(to: latest)
        XCTAssertEqual(try CheckpointFile.resolve(newer.path)?.path, newer.path)
        XCTAssertEqual(try CheckpointFile.resolve(latest.path)?.lastPathComponent, older.lastPathComponent)
        XCTAssertEqual(try CheckpointFile.resolve(dir.path)?.lastPathComponent, older.lastPathComponent)
        try Data("gone.safetensors.zst\n".utf8).write(to: latest)
        XCTAssertThrowsError(try CheckpointFile.resolve(latest.path)) { XCTAssertTrue("\($0)".contains("gone.safetensors.zst"), "\($0)") }
        XCTAssertEqual(try CheckpointFile.resolve(dir.path)?.lastPathComponent, newer.lastPathComponent)   // falls back to the newest
        try Data("../../etc/passwd\n".utf8).write(to: latest)
        XCTAssertThrowsError(try CheckpointFile.resolve(latest.path))
    }

    /// eval and predict take a run folder or its `latest` file, as train --resume does.
    func testEvalAndPredictTakeARunFolder() throws {
        let dir = TestPaths.temporaryDirectory("runfolder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fkp = TestPaths.product("fkp").path
        let train = try ProcessRunner.run(fkp, ["train", "--data", "synthetic:32", "--batch", "8", "--epochs", "1",
                                                "--steps-per-epoch", "2", "--threads", "1", "--quiet", "--no-pictures", "--out", dir.path])
        XCTAssertEqual(train.status, 0, train.output)
        let newest = CheckpointFile.list(in: dir).last!
        for checkpoint in [dir.path, dir.appendingPathComponent("latest").path] {
            let e = try ProcessRunner.run(fkp, ["eval", "--checkpoint", checkpoint, "--data", "synthetic:4"])
            XCTAssertEqual(e.status, 0, e.output)
            XCTAssertTrue(e.stdout.contains("checkpoint: \(newest.path)") && e.stdout.contains("images: 4"), e.stdout)
        }
        let faces = dir.appendingPathComponent("faces")
        XCTAssertEqual(try ProcessRunner.run(fkp, ["data", "synth", "--count", "1", "--out", faces.path]).status, 0)
        let p = try ProcessRunner.run(fkp, ["predict", faces.appendingPathComponent("images/000001.png").path,
                                            "--checkpoint", dir.path, "--out", dir.path])
        XCTAssertEqual(p.status, 0, p.output)
        XCTAssertTrue(p.stdout.contains("\"keypoints\""), p.stdout)
        // Metadata describing a model far larger than its tensors (a 60000x60000 facenet asked
        // for 920 GB and aborted) is one clear line naming the file, before anything is allocated.
        var file = try CheckpointFile.read(newest)
        var model = try JSONSerialization.jsonObject(with: Data(file.metadata["model"]!.utf8)) as! [String: Any]
        model["inputHeight"] = 60000; model["inputWidth"] = 60000
        file.metadata["model"] = String(decoding: try JSONSerialization.data(withJSONObject: model), as: UTF8.self)
        let huge = dir.appendingPathComponent("huge.safetensors.zst")
        try CheckpointFile.write(file, to: huge)
        let h = try ProcessRunner.run(fkp, ["eval", "--checkpoint", huge.path, "--data", "synthetic:4"], timeout: 60)
        XCTAssertEqual(h.status, 1, h.output)
        XCTAssertEqual(h.stderr.split(separator: "\n").count, 1, h.stderr)
        XCTAssertTrue(h.stderr.contains("huge.safetensors.zst") && h.stderr.contains("60000x60000"), h.stderr)
        // A folder without checkpoints is one clear line.
        let empty = dir.appendingPathComponent("faces")
        let none = try ProcessRunner.run(fkp, ["eval", "--checkpoint", empty.path, "--data", "synthetic:4"])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.hasPrefix("fkp: error: ") && none.stderr.contains("no checkpoint in this run folder"), none.stderr)
    }
}

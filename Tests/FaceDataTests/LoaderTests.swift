import FaceData
import Foundation
import TestSupport
import XCTest

final class BatchLoaderTests: XCTestCase {
    func immSubset(_ n: Int) throws -> DatasetSubset {
        DatasetSubset(base: try IMMDataset(folder: immFolder), indices: Array(0..<n), label: "first \(n)")
    }

    func options(workers: Int, prefetch: Int) -> LoaderOptions {
        var o = LoaderOptions()
        o.width = 64; o.height = 48
        o.batchSize = 5
        o.augment = true
        o.heatmapSize = (16, 12)
        o.seed = 11
        o.workers = workers; o.prefetch = prefetch
        return o
    }

    /// Every batch of an epoch: (images, keypoints, heatmaps, dataset indices).
    func collect(_ loader: BatchLoader, epoch: Int) throws -> [([Float], [Float], [Float], [Int])] {
        loader.start(epoch: epoch)
        var out: [([Float], [Float], [Float], [Int])] = []
        while let b = try loader.next() {
            out.append((Array(b.images.prefix(b.count * 64 * 48)), Array(b.keypoints.prefix(b.count * 116)),
                        Array(b.heatmaps.prefix(b.count * 58 * 16 * 12)), b.samples.map(\.index)))
        }
        return out
    }

    func testDeterministicWhateverTheThreadingAndShapedRight() throws {
        let data = try immSubset(12)
        let sampler = DistributedSampler(count: 12, seed: 4)
        let a = try collect(try BatchLoader(dataset: data, sampler: sampler, options: options(workers: 1, prefetch: 1)), epoch: 2)
        let loader = try BatchLoader(dataset: data, sampler: sampler, options: options(workers: 3, prefetch: 4))
        let b = try collect(loader, epoch: 2)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a.map { $0.3.count }, [5, 5, 2])
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.0, y.0); XCTAssertEqual(x.1, y.1); XCTAssertEqual(x.2, y.2); XCTAssertEqual(x.3, y.3)
        }
        XCTAssertEqual(a.flatMap { $0.3 }, sampler.indices(epoch: 2))
        XCTAssertTrue(a[0].0.allSatisfy { $0 >= -1 && $0 <= 1 })
        XCTAssertLessThan(a[0].0.min()!, -0.5); XCTAssertGreaterThan(a[0].0.max()!, 0.3)
        XCTAssertTrue(a[0].1.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(a[0].2.max()!, 1, accuracy: 0.2)
        // Another epoch differs; the same epoch again is the same.
        XCTAssertNotEqual(try collect(loader, epoch: 3)[0].1, a[0].1)
        XCTAssertEqual(try collect(loader, epoch: 2)[1].1, a[1].1)
    }

    func testRanksShareOnePermutationAndAugmentationIsRankIndependent() throws {
        let data = try immSubset(9)
        var o = options(workers: 1, prefetch: 2)
        o.heatmapSize = nil
        let single = try collect(try BatchLoader(dataset: data, sampler: DistributedSampler(count: 9, seed: 4), options: o), epoch: 0)
        var byIndex: [Int: [Float]] = [:]
        for batch in single { for (s, index) in batch.3.enumerated() { byIndex[index] = Array(batch.1[(s * 116)..<((s + 1) * 116)]) } }
        var seen: [Int] = []
        for rank in 0..<2 {
            let sampler = DistributedSampler(count: 9, rank: rank, worldSize: 2, seed: 4)
            let batches = try collect(try BatchLoader(dataset: data, sampler: sampler, options: o), epoch: 0)
            XCTAssertEqual(batches.count, 1)
            XCTAssertEqual(batches[0].3.count, 5)  // 9 padded to 10: 5 each
            for (s, index) in batches[0].3.enumerated() {
                XCTAssertEqual(Array(batches[0].1[(s * 116)..<((s + 1) * 116)]), byIndex[index], "sample \(index)")
            }
            seen += batches[0].3
        }
        XCTAssertEqual(Set(seen), Set(0..<9))
    }

    func testPredictionsMapBackToSourcePixels() throws {
        let data = try immSubset(6)
        var o = options(workers: 1, prefetch: 1)
        o.augmentation.flipProbability = 1
        let loader = try BatchLoader(dataset: data, sampler: DistributedSampler(count: 6, seed: 1), options: o)
        loader.start(epoch: 0)
        let batch = try XCTUnwrap(try loader.next())
        var flipped = 0
        for s in 0..<batch.count {
            let info = batch.samples[s]
            if info.flipped { flipped += 1 }
            let back = batch.keypoints.withUnsafeBufferPointer {
                loader.pipeline.sourceKeypoints(normalised: $0.baseAddress! + s * 116, info: info)
            }
            let truth = try data.record(at: info.index).keypoints
            for k in 0..<116 { XCTAssertEqual(back[k], truth[k], accuracy: 0.01) }
            XCTAssertTrue(info.source.hasSuffix(".jpg"))
        }
        XCTAssertGreaterThan(flipped, 0)
    }

    func testBadImagesAreSkippedAndCountedOrFatalWhenStrict() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try writePTSFolder(at: dir, count: 4)
        let dataset = try PTSDataset(folder: dir.path)
        // Damage one image after the dataset was opened: the loader meets it while decoding.
        let png = dir.appendingPathComponent("afw/face2.png")
        let bytes = try Data(contentsOf: png)
        try bytes.prefix(bytes.count / 2).write(to: png)
        var o = LoaderOptions()
        o.width = 32; o.height = 32; o.batchSize = 4
        let skips = SkipLog(warn: nil)
        let loader = try BatchLoader(dataset: dataset, sampler: DistributedSampler(count: 4, seed: 1, mode: .evaluation),
                                     options: o, skips: skips)
        loader.start(epoch: 0)
        let batch = try XCTUnwrap(try loader.next())
        XCTAssertEqual(batch.count, 4)
        XCTAssertFalse(batch.samples.contains { $0.source.hasSuffix("face2.png") })
        XCTAssertEqual(skips.count, 1)
        XCTAssertTrue(skips.errors[0].description.contains("face2.png"))
        XCTAssertNil(try loader.next())
        o.strict = true
        let strict = try BatchLoader(dataset: dataset, sampler: DistributedSampler(count: 4, seed: 1), options: o)
        strict.start(epoch: 0)
        XCTAssertThrowsError(try strict.next()) { XCTAssertTrue("\($0)".contains("face2.png"), "\($0)") }
    }

    func testEvaluationBatchesMatchAcrossRanksAndRestartMidEpoch() throws {
        let data = try immSubset(7)
        var o = options(workers: 2, prefetch: 2)
        o.augment = false
        o.batchSize = 2
        let counts = try (0..<2).map { rank -> [Int] in
            let loader = try BatchLoader(dataset: data, sampler: DistributedSampler(count: 7, rank: rank, worldSize: 2, seed: 1, mode: .evaluation), options: o)
            return try collect(loader, epoch: 0).map { $0.3.count }
        }
        XCTAssertEqual(counts[0], [2, 2]); XCTAssertEqual(counts[1], [2, 1])
        let loader = try BatchLoader(dataset: data, sampler: DistributedSampler(count: 7, seed: 1), options: o)
        loader.start(epoch: 0)
        _ = try loader.next()
        loader.start(epoch: 1)  // abandon epoch 0 halfway
        XCTAssertEqual(try collect(loader, epoch: 1).count, 4)
    }
}

final class DataCommandTests: XCTestCase {
    func fkp(_ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(TestPaths.product("fkp").path, arguments, timeout: 120)
    }

    func testStatsLastLines() throws {
        let imm = try fkp(["data", "stats", immFolder])
        XCTAssertEqual(imm.status, 0, imm.output)
        XCTAssertEqual(imm.stdout.split(separator: "\n").last, "samples: 240 keypoints: 58 skipped: 0")
        let yt = try fkp(["data", "stats", ytFolder])
        XCTAssertEqual(yt.stdout.split(separator: "\n").last, "samples: 3456 keypoints: 68 skipped: 6")
        let strict = try fkp(["data", "stats", ytFolder, "--strict"])
        XCTAssertEqual(strict.status, 1)
        XCTAssertEqual(strict.stderr.split(separator: "\n").count, 1, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("labels_train.xml:13686:"), strict.stderr)
    }

    func testBadInputIsOneLineAndExitOne() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let xml = dir.appendingPathComponent("labels.xml")
        try "<dataset><images><image file='a.jpg'><box top='1' left='x' width='2' height='2'/></image></images></dataset>"
            .write(to: xml, atomically: true, encoding: .utf8)
        let result = try fkp(["data", "stats", xml.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("labels.xml:1:") && result.stderr.contains("not a number"), result.stderr)
        XCTAssertFalse(result.output.contains("Fatal error"))
        let missing = try fkp(["data", "show", dir.appendingPathComponent("none").path, "--out", dir.appendingPathComponent("g.png").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("none"), missing.stderr)
    }

    func testShowWritesAGridAndBenchReportsCropsPerSecond() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("grid.png").path
        let show = try fkp(["data", "show", immFolder, "--out", out, "--augment", "--count", "4", "--size", "64", "--seed", "3"])
        XCTAssertEqual(show.status, 0, show.output)
        let grid = try ImageCodec.readGrey(path: out)
        XCTAssertEqual(grid.width, 2 * (64 + 4) + 4)
        let bench = try fkp(["bench", "data", immFolder, "--size", "64", "--seconds", "0.5", "--heatmaps"])
        XCTAssertEqual(bench.status, 0, bench.output)
        let last = String(bench.stdout.split(separator: "\n").last ?? "")
        XCTAssertTrue(last.hasPrefix("crops/s: "), bench.stdout)
        XCTAssertGreaterThan(Double(last.dropFirst("crops/s: ".count)) ?? 0, 1)
    }
}

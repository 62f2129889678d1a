import ArgumentParser
import FaceData
import Foundation

/// `fkp bench ...`: throughput measurements (release builds only mean anything).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure throughput.", subcommands: [BenchTrain.self, BenchData.self])
}

struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Loader throughput on one worker thread: decode + crop + augment (+ heatmaps); last line 'crops/s: X'.")

    @Argument(help: "Dataset: IMM folder, dlib .xml (or its folder), 300-W .pts folder, or synthetic[:N].")
    var path: String

    @Option(help: "Crop size: N (square) or WxH, e.g. 160x120.")
    var size = "224"

    @Flag(help: "Render a Gaussian heatmap per keypoint as well.")
    var heatmaps = false

    @Option(help: "Heatmap side in pixels (default: the crop's size).")
    var heatmapSize: Int?

    @Option(help: "Seconds to run the loader.")
    var seconds: Double = 5

    @Flag(help: "Turn augmentation off.")
    var noAugment = false

    @Flag(help: "Decode every face once into the in-memory cache first (as training does from its second epoch).")
    var cached = false

    @OptionGroup var imageLimit: ImageLimitOptions

    func parsedSize() throws -> (Int, Int) {
        let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
        if parts.count == 1, parts[0] > 0 { return (parts[0], parts[0]) }
        if parts.count == 2, parts[0] > 0, parts[1] > 0 { return (parts[0], parts[1]) }
        throw ValidationError("--size must be N or WxH, got '\(size)'")
    }

    func run() throws {
        let (width, height) = try parsedSize()
        runReportingErrors {
            let datasetOptions = DatasetOptions(maxPixels: imageLimit.maxPixels)
            let opened = try openDataset(path: path, options: datasetOptions)
            let dataset: any FaceDataset = cached ? CachedDataset(opened, budgetBytes: 4 << 30) : opened
            if cached { for i in 0 ..< dataset.count { _ = try? dataset.record(at: i) } }
            var options = LoaderOptions()
            options.width = width; options.height = height
            options.augment = !noAugment
            options.workers = 1
            if heatmaps {
                let side = heatmapSize ?? width
                options.heatmapSize = (side, side * height / width)
            }
            // Reference measured in the same run: decoding alone (the floor of any loader).
            let decodeStart = Date()
            var decoded = 0
            while Date().timeIntervalSince(decodeStart) < max(seconds / 4, 0.5) {
                _ = try? dataset.record(at: decoded % dataset.count)
                decoded += 1
            }
            let decodeRate = Double(decoded) / Date().timeIntervalSince(decodeStart)

            let sampler = DistributedSampler(count: dataset.count, seed: 1)
            let loader = try BatchLoader(dataset: dataset, sampler: sampler, options: options, skips: datasetOptions.skips)
            var crops = 0, epoch = 0
            let start = Date()
            outer: while true {
                loader.start(epoch: epoch)
                while let batch = try loader.next() {
                    crops += batch.count
                    if Date().timeIntervalSince(start) >= seconds { break outer }
                }
                epoch += 1
            }
            let rate = Double(crops) / Date().timeIntervalSince(start)
            print("dataset: \(dataset.name)")
            print("crop \(width)x\(height), augment \(options.augment ? "on" : "off"), heatmaps "
                  + (options.heatmapSize.map { "\($0.width)x\($0.height) x \(dataset.markup.count)" } ?? "off")
                  + ", 1 worker thread")
            print(String(format: "decode only%@: %.1f images/s", cached ? " (from the cache)" : "", decodeRate))
            print(String(format: "loader: %.1f crops/s (%.2fx of decode only), %d crops in %.1f s",
                         rate, rate / decodeRate, crops, Date().timeIntervalSince(start)))
            print(String(format: "crops/s: %.1f", rate))
        }
    }
}

import ArgumentParser
import FaceData
import Foundation

/// `fkp data ...`: look at datasets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Inspect face datasets (IMM, dlib/iBUG XML, 300-W .pts, synthetic).",
        subcommands: [DataStats.self, DataShow.self, DataSynth.self, DataExportSplit.self])
}

struct DataStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Open a dataset, decode every image, and print a summary; the last line is 'samples: N keypoints: K skipped: S'.")

    @Argument(help: "Dataset: IMM folder, dlib .xml (or its folder), 300-W .pts folder, or synthetic[:N].")
    var path: String

    @Flag(help: "Fail on the first bad sample instead of skipping it.")
    var strict = false

    @OptionGroup var imageLimit: ImageLimitOptions

    func run() throws {
        runReportingErrors {
            let options = DatasetOptions(strict: strict, maxPixels: imageLimit.maxPixels)
            let dataset = try openDataset(path: path, options: options)
            let openSkips = options.skips.count
            var usable = 0, boxed = 0
            var minSide = Int.max, maxSide = 0
            var minX = Float.infinity, maxX = -Float.infinity
            for i in 0..<dataset.count {
                let record: FaceRecord
                do { record = try dataset.record(at: i) } catch let error as DataError {
                    try options.skipOrThrow(error, source: error.file)
                    continue
                }
                usable += 1
                if record.box != nil { boxed += 1 }
                minSide = min(minSide, record.image.width, record.image.height)
                maxSide = max(maxSide, record.image.width, record.image.height)
                for j in stride(from: 0, to: record.keypoints.count, by: 2) {
                    minX = min(minX, record.keypoints[j] / Float(record.image.width))
                    maxX = max(maxX, record.keypoints[j] / Float(record.image.width))
                }
            }
            let markup = dataset.markup
            let pairs = (0..<markup.count).filter { markup.flipPermutation[$0] > $0 }.count
            print("dataset: \(dataset.name)")
            print("markup: \(markup.name), \(markup.count) points, \(pairs) mirror pairs, normalised by "
                  + (markup.normalisingPair.map { "\($0.0)-\($0.1)" } ?? "none"))
            if usable > 0 {
                print("images: sides \(minSide) to \(maxSide) px; faces with a box: \(boxed); "
                      + String(format: "keypoint x span %.2f to %.2f of the width", minX, maxX))
            }
            print("skipped while opening: \(openSkips), while decoding: \(options.skips.count - openSkips)")
            print("samples: \(usable) keypoints: \(markup.count) skipped: \(options.skips.count)")
        }
    }
}

struct DataShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Write a PNG grid of face crops with their keypoints drawn.")

    @Argument(help: "Dataset: IMM folder, dlib .xml (or its folder), 300-W .pts folder, or synthetic[:N].")
    var path: String

    @Option(help: "Output PNG file.")
    var out: String

    @Flag(help: "Apply the training augmentation (seeded).")
    var augment = false

    @Option(help: "Number of faces.")
    var count = 16

    @Option(help: "Seed choosing the faces and their augmentation.")
    var seed: UInt64 = 1

    @Option(help: "Tile size in pixels.")
    var size = 224

    @Flag(help: "Fail on the first bad sample instead of skipping it.")
    var strict = false

    @OptionGroup var imageLimit: ImageLimitOptions

    func validate() throws {
        guard count > 0, count <= 400 else { throw ValidationError("--count must be 1...400") }
        guard size >= 16, size <= 1024 else { throw ValidationError("--size must be 16...1024") }
    }

    func run() throws {
        runReportingErrors {
            let datasetOptions = DatasetOptions(strict: strict, maxPixels: imageLimit.maxPixels)
            let dataset = try openDataset(path: path, options: datasetOptions)
            var options = LoaderOptions()
            options.width = size; options.height = size
            options.augment = augment
            options.seed = seed
            let pipeline = try SamplePipeline(markup: dataset.markup, options: options)
            var picker = SplitMix64(seed, 0x5409)
            let chosen = picker.permutation(dataset.count).prefix(count)
            let columns = Int(Double(chosen.count).squareRoot().rounded(.up))
            let rows = (chosen.count + columns - 1) / columns
            let gap = 4
            var canvas = RGBImage(width: columns * (size + gap) + gap, height: rows * (size + gap) + gap, fill: .grey)
            let pair = dataset.markup.normalisingPair
            for (n, index) in chosen.enumerated() {
                let record: FaceRecord
                do { record = try dataset.record(at: index) } catch let error as DataError {
                    try datasetOptions.skipOrThrow(error, source: error.file)
                    continue
                }
                var rng = SplitMix64(seed, 0, UInt64(index))
                let augmentation = augment ? pipeline.drawAugmentation(for: record, rng: &rng) : .identity
                let sample = pipeline.sample(record, index: index, augmentation: augmentation)
                let x0 = gap + (n % columns) * (size + gap), y0 = gap + (n / columns) * (size + gap)
                canvas.blit(sample.image, x: x0, y: y0)
                for j in 0..<pipeline.keypointCount {
                    let label = pipeline.labels[j]
                    let special = pair.map { label == $0.0 || label == $0.1 } ?? false
                    canvas.drawDot(x: Float(x0) + sample.keypoints[2 * j], y: Float(y0) + sample.keypoints[2 * j + 1],
                                   special ? .red : .green, radius: max(1.2, Float(size) / 150))
                }
                let name = URL(fileURLWithPath: record.source).lastPathComponent
                canvas.drawText(String(name.prefix(size / 6 - 1)), x: x0 + 2, y: y0 + 2, .yellow)
                if sample.info.flipped { canvas.drawText("FLIP", x: x0 + 2, y: y0 + size - 10, .cyan) }
            }
            try canvas.writePNG(to: out)
            print("wrote \(out): \(chosen.count) faces from \(dataset.name)")
        }
    }
}

struct DataSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write built-in synthetic faces to disk in the dlib XML layout (images/*.png + labels.xml).")

    @Option(help: "Number of faces.") var count = 100
    @Option(help: "Seed (the same seed and index give the same face).") var seed: UInt64 = 1
    @Option(help: "Image side in pixels.") var size = 256
    @Option(help: "Output folder.") var out: String

    func run() throws {
        runReportingErrors {
            guard count > 0, size >= 64 else { throw ValidationError("--count must be positive and --size at least 64") }
            let faces = SyntheticFaces(count: count, seed: seed, imageSize: size)
            try writeDlibXML(dataset: faces, count: count, to: URL(fileURLWithPath: out))
            print("wrote \(count) faces to \(out)/labels.xml")
        }
    }
}

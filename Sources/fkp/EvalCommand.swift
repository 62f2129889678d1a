import ArgumentParser
import Checkpoints
import Engine
import FaceData
import Foundation
import SwiftMPI
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a checkpoint on a dataset: MSE, pixel error, NME, failure rate, AUC@0.08.")

    @OptionGroup var trained: CheckpointOptions
    @Option(help: "Dataset path (IMM folder, dlib XML, .pts folder, synthetic[:N]).") var data: String
    @Flag(help: "Evaluate only the validation split the model was trained with (same seed and fraction).") var validationOnly = false
    @Option(help: "Batch size per rank.") var batch = 16
    @OptionGroup var threads: ThreadOptions
    @Option(help: "Write per-image errors to this CSV.") var perImage: String?
    @Option(help: "Write a Kaggle-style submission (Id,Predicted; original image pixels) to this CSV.") var kaggle: String?
    @Flag(help: "Stop at the first unreadable sample.") var strict = false
    @OptionGroup var imageLimit: ImageLimitOptions
    @Flag(inversion: .prefixedNo, help: "Average each prediction with the mirrored image's (default: the checkpoint's).") var flipTest: Bool?
    @Option(help: "Heatmap decoder (default: the checkpoint's).") var heatmapDecoding: TrainConfig.HeatmapDecoding?
    @Option(help: "Face boxes: 'dataset' (the data's own), or 'detector' (dlib's, mapped by the checkpoint's calibration; a face the detector misses keeps its own box and is counted).")
    var boxes = "dataset"
    @Option(help: "Detector upsampling for --boxes detector.") var upsample = 1

    func validate() throws {
        guard ["dataset", "detector"].contains(boxes) else { throw ValidationError("--boxes must be dataset or detector, got '\(boxes)'") }
    }

    func run() throws {
        runReportingErrors {
            let world = MPI.world
            Parallel.setThreads(threads.resolved.threads)
            let checkpointPath = try CheckpointFile.resolveExisting(trained.checkpoint, communicator: world).relativePath
            let model = try TrainedModel(checkpoint: checkpointPath, communicator: world)
            let skips = SkipLog()
            var dataset = try openDataset(path: data, options: DatasetOptions(strict: strict, skips: skips, maxPixels: imageLimit.maxPixels))
            if validationOnly { dataset = TrainingData.split(dataset, model.config).validation }
            var detectorBoxes: DetectorBoxDataset?
            if boxes == "detector" {
                if model.detectorBoxMapping == nil {
                    FileHandle.standardError.write(Data("warning: \(trained.checkpoint): no detector box mapping (fkp calibrate-detector); detector boxes are used as they are\n".utf8))
                }
                detectorBoxes = DetectorBoxDataset(dataset, mapping: model.detectorBoxMapping ?? .identity, upsample: upsample)
                dataset = detectorBoxes!
            }
            guard dataset.markup.count == model.markup.count else {
                throw ValidationError("\(data): \(dataset.markup.count)-point markup, the model was trained on \(model.markup.count) points (\(model.markup.name))")
            }
            let sampler = DistributedSampler(count: dataset.count, rank: world.rank, worldSize: world.size, seed: 0, mode: .evaluation)
            let loader = try BatchLoader(dataset: dataset, sampler: sampler, options: model.loaderOptions(batch: batch, strict: strict), skips: skips)
            let wantRows = perImage != nil || kaggle != nil
            let start = Date()
            var config = model.config
            if let flipTest { config.flipTest = flipTest }
            if let heatmapDecoding { config.heatmapDecoding = heatmapDecoding }
            let result = try Evaluator.evaluate(network: model.network, loader: loader, config: config,
                                                normalisingPair: model.normalisingPair, communicator: world, keepImages: wantRows)
            if wantRows {
                // Every rank scored its own shard: gather the rows on rank 0.
                let rows = result.images.map { p in
                    "\(p.source)\t\(p.error.pixelError)\t\(p.error.nme)\t" + p.predicted.map { String($0) }.joined(separator: " ")
                }.joined(separator: "\n")
                let all = try world.allgather(rows).filter { !$0.isEmpty }.joined(separator: "\n")
                if world.rank == 0 { try writeCSVs(all.split(separator: "\n").map(String.init)) }
            }
            let seconds = Date().timeIntervalSince(start)
            let missed = try world.allreduce(Int64(detectorBoxes?.misses.count ?? 0), op: .sum)
            guard world.rank == 0 else { return }
            let m = result.metrics
            print("checkpoint: \(checkpointPath)")
            print("data: \(dataset.name)\(skips.count > 0 ? " (skipped \(skips.count))" : "")")
            print(String(format: "images: %d", m.images))
            if detectorBoxes != nil {
                print("boxes: detector (upsample \(upsample)); missed \(missed) faces, scored with their dataset box")
            }
            print(String(format: "mse: %.6f", result.loss))
            print(String(format: "mean pixel error: %.3f", m.meanPixelError))
            print(String(format: "nme: %.5f", m.nme))
            print(String(format: "failure rate@%.2f: %.4f", m.threshold, m.failureRate))
            print(String(format: "auc@%.2f: %.4f", m.threshold, m.auc))
            print(String(format: "seconds: %.2f (%.2f ms per face, image decoding and cropping included)", seconds, 1000 * seconds / Double(max(m.images, 1))))
        }
    }

    private func writeCSVs(_ rows: [String]) throws {
        let parsed = rows.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        if let perImage {
            var text = "image,pixel_error,nme\n"
            for r in parsed { text += "\(csvField(r[0])),\(r[1]),\(r[2])\n" }
            try text.write(toFile: perImage, atomically: true, encoding: .utf8)
        }
        if let kaggle {
            var text = "Id,Predicted\n"
            for r in parsed {
                let values = r[3].split(separator: " ")
                let name = URL(fileURLWithPath: r[0]).lastPathComponent
                for (j, v) in values.enumerated() { text += "\(csvField("\(name)_\(j / 2)_\(j % 2 == 0 ? "x" : "y")")),\(v)\n" }
            }
            try text.write(toFile: kaggle, atomically: true, encoding: .utf8)
        }
    }

    private func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

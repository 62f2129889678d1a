import ArgumentParser
import Checkpoints
import FaceData
import Foundation
import Training

/// A separate command rather than a step of `fkp train`: detection costs about as much per face as a
/// training step of the fast presets, it is needed only by predict (and eval --boxes detector), and
/// a separate step also calibrates checkpoints trained before it existed.
struct CalibrateDetector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate-detector",
        abstract: "Fit the mapping from face-detector boxes to the model's training boxes and store it in the checkpoint.",
        discussion: """
            Runs dlib's face detector over faces of the checkpoint's training split (never its validation split), \
            pairs each detection with the face's box, fits centre offset and size scale by least squares (in units \
            of the detector box) and rewrites the checkpoint atomically with the mapping in its metadata \
            (key detector_box_mapping). `fkp predict` applies it to every detected face.
            """)

    @Option(help: "Checkpoint file (*.safetensors.zst); rewritten in place.") var checkpoint: String
    @Option(help: "The dataset the checkpoint was trained on (its training split is used).") var data: String
    @Option(help: "Training faces to use (a seeded random subset; 0 = all).") var faces = 500
    @Option(help: "Detector upsampling (as fkp predict --upsample).") var upsample = 1
    @Flag(help: "Print the mapping without rewriting the checkpoint.") var dryRun = false
    @OptionGroup var imageLimit: ImageLimitOptions

    func validate() throws {
        guard (0...4).contains(upsample) else { throw ValidationError("--upsample must be 0 to 4, got \(upsample)") }
        guard faces >= 0 else { throw ValidationError("--faces must be 0 or more") }
    }

    func run() throws {
        runReportingErrors {
            let url = URL(fileURLWithPath: checkpoint)
            let config = try TrainingCheckpoint.contents(of: try CheckpointFile.read(url), path: checkpoint).config
            let skips = SkipLog()
            let dataset = try openDataset(path: data, options: DatasetOptions(skips: skips, maxPixels: imageLimit.maxPixels))
            let train = config.validationFraction > 0 ? config.split(of: dataset).train : DatasetSubset(base: dataset, indices: Array(0..<dataset.count), label: "all")
            var rng = SplitMix64(config.seed, 0xDE7EC7)
            let chosen = faces == 0 || faces >= train.count ? Array(0..<train.count) : Array(rng.permutation(train.count).prefix(faces)).sorted()
            let start = Date()
            let (mapping, missed, unreadable) = try calibrateDetector(dataset: train, indices: chosen, upsample: upsample,
                                                                      cropWidth: config.inputWidth, cropHeight: config.inputHeight)
            let seconds = Date().timeIntervalSince(start)
            print("data: \(train.name)")
            print(String(format: "faces: %d used, %d missed by the detector, %d unreadable (%.1f s, %.1f ms per face)",
                         mapping.faces, missed, unreadable, seconds, 1000 * seconds / Double(max(chosen.count, 1))))
            print(String(format: "mapping: centre + (%.4f, %.4f) x detector size, size x (%.4f, %.4f)",
                         mapping.offsetX, mapping.offsetY, mapping.scaleWidth, mapping.scaleHeight))
            print(String(format: "rms residual (detector-box units): centre %.4f, size %.4f", mapping.rmsCentre, mapping.rmsSize))
            guard !dryRun else { return }
            try TrainingCheckpoint.storeDetectorBoxMapping(mapping, in: url)
            print("stored in \(checkpoint)")
        }
    }
}

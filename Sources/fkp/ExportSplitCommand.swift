import ArgumentParser
import Checkpoints
import FaceData
import Foundation
import Training

/// Writes a checkpoint's train and validation split as two dlib XML datasets, so other tools (dlib's
/// shape predictor in Scripts/bench-vs-dlib) train and score on exactly fkp's faces.
struct DataExportSplit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-split",
        abstract: "Write the train/validation split a checkpoint was trained with as OUT/train/labels.xml and OUT/validation/labels.xml (grey PNGs, dlib layout).")

    @Option(help: "Checkpoint whose split (seed, fraction, random or by person) to export.") var checkpoint: String?
    @Option(help: "Or a preset (`fkp presets`): its split, as `fkp train --preset` makes it.") var preset: String?
    @Option(help: "The dataset the checkpoint was trained on.") var data: String
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        guard (checkpoint == nil) != (preset == nil) else { throw ValidationError("give either --checkpoint or --preset") }
        if let preset, Preset.named(preset) == nil { throw ValidationError("unknown preset '\(preset)' (fkp presets lists them)") }
    }

    func run() throws {
        runReportingErrors {
            let config = if let checkpoint {
                try TrainingCheckpoint.contents(of: try CheckpointFile.read(URL(fileURLWithPath: checkpoint)), path: checkpoint).config
            } else {
                Preset.named(preset!)!.config
            }
            let skips = SkipLog()
            let dataset = try openDataset(path: data, options: DatasetOptions(skips: skips))
            let split = config.split(of: dataset)
            for (name, part) in [("train", split.train), ("validation", split.test)] {
                // Faces the loader would skip (unreadable, keypoints outside the image) are left out here too.
                let readable = part.indices.filter { index in
                    do { _ = try dataset.record(at: index); return true } catch let error as DataError {
                        skips.record(error, source: error.file)
                        return false
                    } catch { return false }
                }
                let subset = DatasetSubset(base: dataset, indices: readable, label: name)
                try writeDlibXML(dataset: subset, to: URL(fileURLWithPath: out).appendingPathComponent(name))
                print("\(name): \(readable.count) faces (\(part.count - readable.count) skipped) -> \(out)/\(name)/labels.xml")
            }
        }
    }
}

import Checkpoints
import FaceData
import Foundation

/// The detector box mapping (`fkp calibrate-detector`) lives in a checkpoint's metadata under its
/// own key, beside `preprocessing`: checkpoints written before it existed still load (predict then
/// uses detector boxes as they are, with a warning).
extension TrainingCheckpoint {
    public static let detectorBoxMappingKey = "detector_box_mapping"

    /// The mapping stored in `file`'s metadata; nil when it has none.
    public static func detectorBoxMapping(in file: SafeTensors, path: String) throws -> DetectorBoxMapping? {
        guard let text = file.metadata[detectorBoxMappingKey] else { return nil }
        guard let mapping = try? JSONDecoder().decode(DetectorBoxMapping.self, from: Data(text.utf8)) else {
            throw CheckpointFile.Failure(path: path, message: "metadata '\(detectorBoxMappingKey)' is malformed")
        }
        return mapping
    }

    /// Rewrites the checkpoint at `url` with `mapping` in its metadata, atomically (the old file stays
    /// whole until the new one is complete); tensors and every other metadata key are kept as they are.
    public static func storeDetectorBoxMapping(_ mapping: DetectorBoxMapping, in url: URL) throws {
        var file = try CheckpointFile.read(url)
        _ = try contents(of: file, path: url.path)   // an fkp checkpoint, not any safetensors file
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        file.metadata[detectorBoxMappingKey] = String(decoding: try encoder.encode(mapping), as: UTF8.self)
        try CheckpointFile.write(file, to: url)
    }
}

extension TrainConfig {
    /// The train/validation split of `dataset` this configuration trains with.
    public func split(of dataset: any FaceDataset) -> DatasetSplit {
        split == .byPerson ? dataset.personSplit(testFraction: validationFraction, seed: seed)
            : dataset.randomSplit(testFraction: validationFraction, seed: seed)
    }
}

import Checkpoints
import Engine
import Foundation
import Models
import SwiftMPI

/// Where a run stands: enough, with the weights and optimizer state, for a bit-exact resume.
/// The position is kept in samples of the epoch's sample stream (see
/// `DistributedSampler.indices(epoch:positions:)`) and the global batch is kept with it, so a run
/// resumes on any number of ranks at the same sample with the same schedule.
public struct RunPosition: Codable, Equatable, Sendable {
    public var epoch = 0
    /// Optimizer steps of `epoch` already done (resume skips them).
    public var batchInEpoch = 0
    /// Samples of `epoch`'s stream already trained on (all ranks together): batchInEpoch × globalBatch.
    public var sampleInEpoch = 0
    /// Samples per optimizer step over all ranks (per-rank batch × ranks × accumulate); kept on resume.
    public var globalBatch = 0
    /// Optimizer steps taken.
    public var step = 0
    public var worldSize = 1
    /// Per-rank dropout generator states (4 words each), in rank order.
    public var randomStates: [[UInt64]] = []
    /// The running sums of the current epoch, so a resumed epoch reports the same train loss.
    public var epochLossSum = 0.0
    public var epochSteps = 0
    public var epochImages = 0
    public var epochSeconds = 0.0

    public init() {}

    /// Format 1 had no sample position or global batch: both are 0 there and filled from the
    /// checkpoint's `global_batch` metadata (its batch position then meant the same samples).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try c.decode(Int.self, forKey: .epoch)
        batchInEpoch = try c.decode(Int.self, forKey: .batchInEpoch)
        sampleInEpoch = try c.decodeIfPresent(Int.self, forKey: .sampleInEpoch) ?? 0
        globalBatch = try c.decodeIfPresent(Int.self, forKey: .globalBatch) ?? 0
        step = try c.decode(Int.self, forKey: .step)
        worldSize = try c.decode(Int.self, forKey: .worldSize)
        randomStates = try c.decode([[UInt64]].self, forKey: .randomStates)
        epochLossSum = try c.decode(Double.self, forKey: .epochLossSum)
        epochSteps = try c.decode(Int.self, forKey: .epochSteps)
        epochImages = try c.decode(Int.self, forKey: .epochImages)
        epochSeconds = try c.decode(Double.self, forKey: .epochSeconds)
    }
}

extension RunPosition {
    /// What makes a position from an untrusted checkpoint unusable (nil: nothing): counts must be
    /// non-negative, every rank's generator state must have its 4 words, and the products resume
    /// computes must not overflow.
    var problem: String? {
        let counts = [("epoch", epoch), ("batchInEpoch", batchInEpoch), ("sampleInEpoch", sampleInEpoch), ("step", step),
                      ("epochSteps", epochSteps), ("epochImages", epochImages)]
        if let (name, value) = counts.first(where: { $0.1 < 0 }) { return "\(name) \(value) is negative" }
        guard worldSize >= 1 else { return "worldSize \(worldSize)" }
        guard globalBatch >= 1 else { return "globalBatch \(globalBatch)" }
        if let bad = randomStates.first(where: { $0.count != 4 }) {
            return "a random generator state has \(bad.count) words, not 4"
        }
        guard !epochImages.multipliedReportingOverflow(by: worldSize).overflow else {
            return "epochImages \(epochImages) on \(worldSize) ranks"
        }
        guard epochLossSum.isFinite, epochSeconds.isFinite, epochSeconds >= 0 else { return "epoch sums not finite" }
        return nil
    }
}

/// The preprocessing a model was trained with, so eval and predict need only the checkpoint.
public struct Preprocessing: Codable, Equatable, Sendable {
    public var inputWidth: Int
    public var inputHeight: Int
    public var cropEnlargement: Float
    /// Pixel normalisation applied to grey values in [0, 1]: (v - mean) / std.
    public var mean: Float
    public var std: Float
    public var markup: String
    public var markupCount: Int
    public var keypoints: [Int]?
    public var flipPermutation: [Int]
    public var normalisingPair: [Int]?
    /// Written for readers of the checkpoint format (fkp before the head types read these two);
    /// fkp itself takes the target and the decoder from the configuration's head (`TrainConfig.head`).
    public var task: TrainConfig.Task
    public var heatmapSigma: Float
}

/// Reads and writes whole training states: model tensors under PyTorch names, optimizer state
/// under `optimizer.*`, and JSON metadata (config, preprocessing, position).
public enum TrainingCheckpoint {
    public struct Contents {
        public var path: String
        public var file: SafeTensors
        public var config: TrainConfig
        public var model: ModelConfig
        public var preprocessing: Preprocessing
        public var position: RunPosition
        public var optimizerStep: Int
    }

    public static func metadata(config: TrainConfig, model: ModelConfig, preprocessing: Preprocessing,
                                position: RunPosition, globalBatch: Int, learningRate: Float, optimizerStep: Int) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        return [
            "format": CheckpointFile.formatName,
            "format_version": CheckpointFile.formatVersion,
            "model_name": model.name,
            "model": try json(model),
            "config": try json(config),
            "preprocessing": try json(preprocessing),
            "position": try json(position),
            "epoch": String(position.epoch),
            "step": String(position.step),
            "global_batch": String(globalBatch),
            "world_size": String(position.worldSize),
            "learning_rate": String(learningRate),
            "schedule": config.schedule.description,
            "optimizer_step": String(optimizerStep),
        ]
    }

    /// Parses a checkpoint's metadata; `path` names the file in errors.
    public static func contents(of file: SafeTensors, path: String) throws -> Contents {
        func fail(_ message: String) -> CheckpointFile.Failure { CheckpointFile.Failure(path: path, message: message) }
        guard file.metadata["format"] == CheckpointFile.formatName else {
            throw fail("not an fkp checkpoint (no format=\(CheckpointFile.formatName) in its metadata)")
        }
        guard let version = file.metadata["format_version"], CheckpointFile.readableVersions.contains(version) else {
            throw fail("checkpoint format version \(file.metadata["format_version"] ?? "?") is not supported (this fkp reads \(CheckpointFile.readableVersions.joined(separator: " and ")))")
        }
        func decode<T: Decodable>(_ key: String, as: T.Type) throws -> T {
            guard let text = file.metadata[key], let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else {
                throw fail("metadata '\(key)' is missing or malformed")
            }
            return value
        }
        var position = try decode("position", as: RunPosition.self)
        if position.globalBatch == 0 {   // format 1
            guard let globalBatch = Int(file.metadata["global_batch"] ?? ""), globalBatch > 0 else {
                throw fail("metadata 'global_batch' is missing or malformed")
            }
            position.globalBatch = globalBatch
            // Untrusted numbers: the product trapped on overflow (found by Scripts/fuzz metadata).
            let (samples, overflow) = position.batchInEpoch.multipliedReportingOverflow(by: globalBatch)
            guard position.batchInEpoch >= 0, !overflow else {
                throw fail("metadata 'position' is malformed (batch \(position.batchInEpoch) of \(globalBatch) samples)")
            }
            position.sampleInEpoch = samples
        }
        if let problem = position.problem { throw fail("metadata 'position' is malformed (\(problem))") }
        return Contents(path: path, file: file, config: try decode("config", as: TrainConfig.self),
                        model: try decode("model", as: ModelConfig.self),
                        preprocessing: try decode("preprocessing", as: Preprocessing.self),
                        position: position,
                        optimizerStep: Int(file.metadata["optimizer_step"] ?? "0") ?? 0)
    }

    /// Rank 0 reads the file and broadcasts its bytes, so ranks need no shared filesystem. Every
    /// rank gets the same result or the same error.
    public static func readFileBroadcast(_ url: URL, communicator: Communicator) throws -> SafeTensors {
        var bytes: [UInt8] = []
        var errorText = ""
        if communicator.rank == 0 {
            if let data = FileManager.default.contents(atPath: url.path) { bytes = [UInt8](data) } else {
                errorText = "cannot read the file (missing or unreadable)"
            }
        }
        errorText = try communicator.broadcast(errorText)
        if !errorText.isEmpty { throw CheckpointFile.Failure(path: url.path, message: errorText) }
        bytes = try communicator.broadcastBytes(bytes)
        return try CheckpointFile.parse(bytes, path: url.path)
    }

    /// A whole training state (weights, optimizer, metadata), read by rank 0 and broadcast.
    public static func readBroadcast(_ url: URL, communicator: Communicator) throws -> Contents {
        try contents(of: try readFileBroadcast(url, communicator: communicator), path: url.path)
    }
}

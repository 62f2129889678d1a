import Foundation

/// `metrics.jsonl` in the run directory: one JSON object per epoch (epoch, step, train_loss,
/// val_loss, images_per_s, lr, and validation keypoint errors).
public enum MetricsLog {
    public static let fileName = "metrics.jsonl"

    public static func append(_ record: EpochRecord, to directory: URL) throws {
        let url = directory.appendingPathComponent(fileName)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(record)
        line.append(0x0A)
        if let handle = try? FileHandle(forWritingTo: url) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } else {
            try line.write(to: url)
        }
    }

    /// The records already written (a resumed run continues the same file and curves).
    public static func read(_ directory: URL) -> [EpochRecord] {
        guard let text = try? String(contentsOf: directory.appendingPathComponent(fileName), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(EpochRecord.self, from: Data($0.utf8)) }
    }

    /// Drops records past `epoch` (a resume from an earlier checkpoint redoes those epochs).
    public static func truncate(_ directory: URL, afterEpoch epoch: Int) throws {
        let kept = read(directory).filter { $0.epoch <= epoch }
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        try? FileManager.default.removeItem(at: url)
        for record in kept { try append(record, to: directory) }
    }
}

/// One line of metrics.jsonl (keys as written).
public struct EpochRecord: Codable {
    public var epoch: Int
    public var step: Int
    public var train_loss: Double
    public var val_loss: Double?
    public var images_per_s: Double
    public var lr: Double
    public var val_nme: Double?
    public var val_pixel_error: Double?
    public var val_failure_rate: Double?
    public var seconds: Double
}

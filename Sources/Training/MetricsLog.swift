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

/// One line of metrics.jsonl (keys as written; the validation keys only with a validation split).
/// A value that is not finite (a diverged model's validation) is written as JSON `null`, since JSON
/// has no NaN or infinity, and the line is kept; reading it back gives NaN for the fields every
/// line has and nil for the validation ones.
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

    public init(epoch: Int, step: Int, train_loss: Double, val_loss: Double?, images_per_s: Double, lr: Double,
                val_nme: Double?, val_pixel_error: Double?, val_failure_rate: Double?, seconds: Double) {
        self.epoch = epoch; self.step = step; self.train_loss = train_loss; self.val_loss = val_loss
        self.images_per_s = images_per_s; self.lr = lr; self.val_nme = val_nme
        self.val_pixel_error = val_pixel_error; self.val_failure_rate = val_failure_rate; self.seconds = seconds
    }

    /// The keys, in the order metrics.jsonl and TensorBoard write them.
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case epoch, step, train_loss, val_loss, images_per_s, lr, val_nme, val_pixel_error, val_failure_rate, seconds
    }

    /// Every value but the epoch and step, under its metrics.jsonl key: the one list both
    /// metrics.jsonl and the TensorBoard scalars are written from. nil: not measured (no
    /// validation split); such keys are left out of both.
    public var scalars: [(key: String, value: Double?)] { values.map { ($0.key.rawValue, $0.value) } }

    private var values: [(key: CodingKeys, value: Double?)] {
        CodingKeys.allCases.compactMap { key in
            switch key {
            case .epoch, .step: return nil
            case .train_loss: return (key, train_loss)
            case .val_loss: return (key, val_loss)
            case .images_per_s: return (key, images_per_s)
            case .lr: return (key, lr)
            case .val_nme: return (key, val_nme)
            case .val_pixel_error: return (key, val_pixel_error)
            case .val_failure_rate: return (key, val_failure_rate)
            case .seconds: return (key, seconds)
            }
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func always(_ key: CodingKeys) throws -> Double { try c.decodeIfPresent(Double.self, forKey: key) ?? .nan }
        epoch = try c.decode(Int.self, forKey: .epoch)
        step = try c.decode(Int.self, forKey: .step)
        train_loss = try always(.train_loss)
        images_per_s = try always(.images_per_s)
        lr = try always(.lr)
        seconds = try always(.seconds)
        val_loss = try c.decodeIfPresent(Double.self, forKey: .val_loss)
        val_nme = try c.decodeIfPresent(Double.self, forKey: .val_nme)
        val_pixel_error = try c.decodeIfPresent(Double.self, forKey: .val_pixel_error)
        val_failure_rate = try c.decodeIfPresent(Double.self, forKey: .val_failure_rate)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(step, forKey: .step)
        for (key, value) in values {
            guard let value else { continue }   // no validation: the key is left out, as before
            if value.isFinite { try c.encode(value, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
    }
}

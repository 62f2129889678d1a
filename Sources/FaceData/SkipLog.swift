import Foundation

/// Counts the samples a dataset or loader skipped (bad images, keypoints outside the image, ...),
/// warns once per sample, and keeps the messages for reports. Thread-safe: loader threads share it.
/// In `strict` mode the owner throws instead of recording.
public final class SkipLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [DataError] = []
    private var sources = Set<String>()
    /// Where warnings go (default: one line on stderr); nil for silence.
    public let warn: (@Sendable (String) -> Void)?

    public init(warn: (@Sendable (String) -> Void)? = SkipLog.standardError) { self.warn = warn }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data("warning: \(line) (sample skipped)\n".utf8))
    }

    /// Records one skipped sample; the same source is counted once however often it is met.
    public func record(_ error: DataError, source: String? = nil) {
        lock.lock()
        let key = source ?? error.description
        let isNew = sources.insert(key).inserted
        if isNew { entries.append(error) }
        lock.unlock()
        if isNew { warn?(error.description) }
    }

    public var count: Int { lock.lock(); defer { lock.unlock() }; return entries.count }
    public var errors: [DataError] { lock.lock(); defer { lock.unlock() }; return entries }
}

/// How datasets treat bad samples when opened: skip (counted in `skips`) or, when strict, throw.
public struct DatasetOptions: Sendable {
    public var strict: Bool
    public var skips: SkipLog
    /// Images whose header claims more pixels are bad samples (decompression bombs), see `ImageCodec`.
    public var maxPixels: Int

    public init(strict: Bool = false, skips: SkipLog = SkipLog(), maxPixels: Int = ImageCodec.defaultMaxPixels) {
        self.strict = strict; self.skips = skips; self.maxPixels = maxPixels
    }

    /// Throws `error` when strict, otherwise records it as a skipped sample.
    public func skipOrThrow(_ error: DataError, source: String? = nil) throws {
        if strict { throw error }
        skips.record(error, source: source)
    }
}

import CZstd
import Foundation

/// Checkpoint files: a safetensors payload compressed with zstd (`*.safetensors.zst`), written
/// atomically (temporary file, fsync, rename) so a crash never leaves a half-written checkpoint
/// under the real name, and a `latest` file naming the newest one.
public enum CheckpointFile {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let message: String
        public var description: String { "\(path): \(message)" }
        public init(path: String, message: String) { self.path = path; self.message = message }
    }

    public static let suffix = ".safetensors.zst"
    public static let formatName = "fkp-checkpoint"
    /// 2: the run position is kept in samples, with the global batch (elastic resume).
    public static let formatVersion = "2"
    public static let readableVersions = ["1", "2"]

    /// Compresses and writes `tensors` to `url` atomically.
    public static func write(_ tensors: SafeTensors, to url: URL) throws {
        let payload = try tensors.serialized()
        let compressed = try payload.withUnsafeBytes { try Zstd.compress($0) }
        try writeAtomically(compressed, to: url)
    }

    /// The most memory a checkpoint write holds at once, for tensors of `tensorBytes` bytes added
    /// in that order (a memory plan's figure; the write is rank 0's largest transient, and for
    /// ResNet-50 with its AdamW state about three times the 280 MB payload):
    ///  - the `SafeTensors` byte array, grown by appending: Swift doubles an array's capacity, so
    ///    while it grows the old and the new storage are both held, and it ends up to 2× its count;
    ///  - `serialized()`'s copy (8-byte length, JSON header of about `headerBytes`, the tensors);
    ///  - zstd's output buffer, `ZSTD_compressBound` bytes filled with zeros (every page touched),
    ///    and zstd's compression context, 1.24 MiB at level 3 for any input over 1 MB (measured
    ///    with `ZSTD_sizeof_CCtx`, zstd 1.5.4).
    public static func plannedWriteBytes(tensorBytes: [Int], headerBytes: Int) -> Int {
        var (count, capacity, growing) = (0, 0, 0)
        for bytes in tensorBytes {
            count += bytes
            if count > capacity {
                let grown = max(count, 2 * capacity)
                growing = max(growing, capacity + grown)
                capacity = grown
            }
        }
        let payload = 8 + headerBytes + count
        return max(growing, capacity + payload + ZSTD_compressBound(payload) + compressionContextBytes)
    }

    /// `ZSTD_sizeof_CCtx` after a level-3 compression of 1 MB to 256 MB (zstd 1.5.4).
    static let compressionContextBytes = 1_303_456

    /// Reads and validates a checkpoint; every failure names the file.
    public static func read(_ url: URL) throws -> SafeTensors {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(path: path, message: "cannot read the file (missing or unreadable)")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Decompresses and parses checkpoint bytes (read here, or broadcast by rank 0).
    public static func parse(_ bytes: [UInt8], path: String) throws -> SafeTensors {
        let payload: [UInt8]
        do {
            payload = try bytes.withUnsafeBytes { try Zstd.decompress($0) }
        } catch {
            throw Failure(path: path, message: "not a valid zstd-compressed checkpoint (\(error))")
        }
        do {
            return try SafeTensors(parsing: payload)
        } catch {
            throw Failure(path: path, message: "not a valid safetensors payload (\(error))")
        }
    }

    public static func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(temporaryName(for: url.lastPathComponent, pid: getpid()))
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Failure(path: temporary.path, message: "cannot create (\(String(cString: strerror(errno))))") }
        var ok = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok else {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw Failure(path: url.path, message: "write failed (\(reason)); the previous checkpoints are untouched")
        }
        guard rename(temporary.path, url.path) == 0 else {
            unlink(temporary.path)
            throw Failure(path: url.path, message: "rename failed (\(String(cString: strerror(errno))))")
        }
        // fsync the directory so the rename itself survives a crash.
        let dirfd = open(directory.path, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    /// Where `writeAtomically` writes `name` before renaming it: hidden, and tagged with the writer's PID.
    static func temporaryName(for name: String, pid: Int32) -> String { ".\(name).tmp-\(pid)" }

    /// Removes the temporaries of writes that never finished (`.NAME.tmp-PID`: a killed job leaves
    /// one, as large as a checkpoint) and returns their names. Rank 0 calls it at the start of a
    /// run, when no write of that run is in flight.
    public static func removeStaleTemporaries(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var removed: [String] = []
        for name in names.sorted() where name.hasPrefix(".") {
            guard let tag = name.range(of: ".tmp-", options: .backwards), tag.lowerBound > name.index(after: name.startIndex) else { continue }
            let pid = name[tag.upperBound...]
            guard !pid.isEmpty, pid.allSatisfy(\.isASCII), pid.allSatisfy(\.isNumber) else { continue }
            if (try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))) != nil { removed.append(name) }
        }
        return removed
    }

    /// Checkpoints in `directory`, oldest first (by the step number in the name `step-NNNNNNNN`).
    public static func list(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(suffix) && !$0.hasPrefix(".") }.sorted()
            .map { directory.appendingPathComponent($0) }
    }

    public static func name(step: Int) -> String { String(format: "step-%09d", step) + suffix }

    /// Records `url` as the newest checkpoint and removes all but the newest `keep`.
    public static func updateLatest(_ url: URL, keep: Int) throws {
        let directory = url.deletingLastPathComponent()
        try writeAtomically(Array((url.lastPathComponent + "\n").utf8), to: directory.appendingPathComponent("latest"))
        if keep > 0 {
            let all = list(in: directory)
            for old in all.dropLast(keep) where old.lastPathComponent != url.lastPathComponent {
                try? FileManager.default.removeItem(at: old)
            }
        }
    }
}

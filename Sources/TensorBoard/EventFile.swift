import Foundation
import SwiftProtobuf

/// A TensorBoard event file (`events.out.tfevents.*`): TFRecord framing around `tensorflow.Event`
/// protos, the first of which names the format version. `tensorboard --logdir` reads every such
/// file in a folder, each one as it grows: every event goes to the file when it is written. The
/// protos are Generated/ from Protos/tensorboard by Scripts/generate-protos (protoc + protoc-gen-swift).
public final class EventFile {
    public let url: URL
    private let handle: FileHandle

    /// A new file in `directory` (existing event files stay: TensorBoard reads them all in name
    /// order). The name is TensorFlow's, `events.out.tfevents.SECONDS.HOST.PID`, with the
    /// microseconds after the seconds: a run resumed within the same second as the one it
    /// continues must still sort after it, or its restart marker would come first.
    public init(directory: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        let seconds = wallTime.rounded(.down), micro = Int((wallTime - seconds) * 1e6)
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(seconds)).\(String(format: "%06d", micro)).\(host).\(getpid())")
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw EventFileError("\(url.path): cannot create the TensorBoard event file")
        }
        handle = try FileHandle(forWritingTo: url)
        var first = Tensorflow_Event()
        first.wallTime = wallTime
        first.fileVersion = "brain.Event:2"
        try write(first)
    }

    deinit { try? handle.close() }

    /// Scalars (TensorBoard's "simple values") at one step, in one event.
    public func scalars(_ values: [(tag: String, value: Double)], step: Int) throws {
        var summary = Tensorflow_Summary()
        summary.value = values.map { tag, value in
            var v = Tensorflow_Summary.Value()
            v.tag = tag
            v.simpleValue = Float(value)
            return v
        }
        try write(summary, step: step)
    }

    /// A PNG picture as an image summary.
    public func image(tag: String, png: Data, width: Int, height: Int, channels: Int, step: Int) throws {
        var image = Tensorflow_Summary.Image()
        image.width = Int32(width)
        image.height = Int32(height)
        image.colorspace = Int32(channels)
        image.encodedImageString = png
        var value = Tensorflow_Summary.Value()
        value.tag = tag
        value.image = image
        var summary = Tensorflow_Summary()
        summary.value = [value]
        try write(summary, step: step)
    }

    /// Marks a resumed run: TensorBoard drops the events of earlier files from `step` on, which a
    /// resume from an older checkpoint is about to write again.
    public func restart(at step: Int) throws {
        var event = Tensorflow_Event()
        event.wallTime = Date().timeIntervalSince1970
        event.step = Int64(step)
        event.sessionLog.status = .start
        try write(event)
    }

    private func write(_ summary: Tensorflow_Summary, step: Int) throws {
        var event = Tensorflow_Event()
        event.wallTime = Date().timeIntervalSince1970
        event.step = Int64(step)
        event.summary = summary
        try write(event)
    }

    private func write(_ event: Tensorflow_Event) throws {
        let data: Data = try event.serializedBytes()
        do { try handle.write(contentsOf: TFRecord.frame(data)) } catch {
            throw EventFileError("\(url.path): \(error.localizedDescription)")
        }
    }
}

/// TFRecord framing: length (UInt64), masked CRC-32C of the length, data, masked CRC-32C of the
/// data, all little-endian.
public enum TFRecord {
    public static func frame(_ data: Data) -> Data {
        let length = littleEndianBytes(UInt64(data.count))
        var record = Data(length)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(length)))
        record.append(data)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(data)))
        return record
    }

    static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

public struct EventFileError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

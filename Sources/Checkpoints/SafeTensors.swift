import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {String: String}}`,
/// then the raw little-endian tensor bytes. `safetensors.torch.load_file` reads it.
public struct SafeTensors {
    public enum DType: String, Sendable { case f32 = "F32", i64 = "I64" }

    public struct Entry: Sendable {
        public var dtype: DType
        public var shape: [Int]
        public var range: Range<Int>
    }

    public var metadata: [String: String]
    public private(set) var entries: [String: Entry] = [:]
    public private(set) var order: [String] = []
    private var bytes: [UInt8] = []

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    // MARK: Writing

    public mutating func add(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) {
        precondition(floats.count == shape.reduce(1, *), "\(name): \(floats.count) values for shape \(shape)")
        let start = bytes.count
        bytes.append(contentsOf: UnsafeRawBufferPointer(floats))   // x86-64 and arm64 are little-endian
        insert(name, Entry(dtype: .f32, shape: shape, range: start ..< bytes.count))
    }

    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) {
        let start = bytes.count
        int64s.withUnsafeBytes { bytes.append(contentsOf: $0) }
        insert(name, Entry(dtype: .i64, shape: shape, range: start ..< bytes.count))
    }

    private mutating func insert(_ name: String, _ entry: Entry) {
        precondition(entries[name] == nil, "duplicate tensor \(name)")
        entries[name] = entry
        order.append(name)
    }

    /// The file's bytes.
    public func serialized() throws -> [UInt8] {
        var header: [String: Any] = [:]
        for (name, entry) in entries {
            header[name] = ["dtype": entry.dtype.rawValue, "shape": entry.shape,
                            "data_offsets": [entry.range.lowerBound, entry.range.upperBound]]
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the tensor data starts 8-byte aligned.
        while (json.count % 8) != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + bytes.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        out.append(contentsOf: bytes)
        return out
    }

    // MARK: Reading

    public struct FormatError: Error, CustomStringConvertible { public let description: String }

    /// The longest JSON header read: safetensors' own limit (`MAX_HEADER_SIZE`, 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Parses a safetensors buffer, validating what safetensors' own reader does: the header
    /// length, every entry's dtype, shape (no negative dimension, no overflowing element count)
    /// and offsets (each tensor exactly its shape's size, tensors back to back from 0 to the end
    /// of the buffer, none overlapping).
    public init(parsing data: [UInt8]) throws {
        guard data.count >= 8 else { throw FormatError(description: "too short for a safetensors header") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(SafeTensors.maxHeaderBytes) else {
            throw FormatError(description: "header length \(headerLength) is over the limit of \(SafeTensors.maxHeaderBytes) bytes")
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw FormatError(description: "header length \(headerLength) exceeds the file")
        }
        let headerEnd = 8 + Int(headerLength)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(data[8 ..< headerEnd]))
        } catch {
            throw FormatError(description: "header is not valid JSON")
        }
        guard let header = object as? [String: Any] else { throw FormatError(description: "header is not a JSON object") }
        if let meta = header["__metadata__"] {
            guard let strings = meta as? [String: String] else {
                throw FormatError(description: "__metadata__ is not an object of strings")
            }
            metadata = strings
        } else {
            metadata = [:]
        }
        bytes = Array(data[headerEnd...])
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw FormatError(description: "tensor \(name): malformed header entry") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw FormatError(description: "tensor \(name): unsupported dtype \(dtypeName) (F32 and I64 are read)")
            }
            var size = dtype == .f32 ? 4 : 8
            for dimension in shape {
                let (product, overflow) = size.multipliedReportingOverflow(by: dimension)
                guard dimension >= 0, !overflow else {
                    throw FormatError(description: "tensor \(name): impossible shape \(shape)")
                }
                size = product
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == size, offsets[1] <= bytes.count else {
                throw FormatError(description: "tensor \(name): data offsets \(offsets) do not fit shape \(shape) in \(bytes.count) bytes")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0] ..< offsets[1])
        }
        order = entries.keys.sorted { (entries[$0]!.range.lowerBound, $0) < (entries[$1]!.range.lowerBound, $1) }
        var end = 0
        for name in order {
            let range = entries[name]!.range
            guard range.lowerBound == end else {
                throw FormatError(description: "tensor \(name): data at \(range.lowerBound) where \(end) was expected (tensors must be back to back, not overlapping)")
            }
            end = range.upperBound
        }
        guard end == bytes.count else {
            throw FormatError(description: "tensor data ends at \(end) but the buffer holds \(bytes.count) bytes")
        }
    }

    // Tensor data sits at any byte offset of the file (its header has any length), so it is read
    // with byte copies and unaligned loads, never as a bound Float or Int64 pointer.

    /// A tensor's values as Float (I64 tensors are converted).
    public func floats(_ name: String) -> [Float]? {
        guard let entry = entries[name] else { return nil }
        return bytes[entry.range].withUnsafeBytes { raw in
            switch entry.dtype {
            case .f32:
                return [Float](unsafeUninitializedCapacity: raw.count / 4) { values, count in
                    UnsafeMutableRawBufferPointer(values).copyMemory(from: raw)
                    count = raw.count / 4
                }
            case .i64: return (0 ..< raw.count / 8).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            }
        }
    }

    /// Copies a tensor's F32 values into `destination` (which must have the tensor's element count).
    public func copy(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) -> Bool {
        guard let entry = entries[name], entry.dtype == .f32, entry.range.count == destination.count * 4 else { return false }
        bytes[entry.range].withUnsafeBytes { raw in
            UnsafeMutableRawBufferPointer(destination).copyMemory(from: raw)
        }
        return true
    }

    /// A tensor's values as Int64 (F32 tensors are converted); nil when missing, or when an F32
    /// value is no whole number in Int64's range (converting it would trap: found by Scripts/fuzz).
    public func int64s(_ name: String) -> [Int64]? {
        guard let entry = entries[name] else { return nil }
        return bytes[entry.range].withUnsafeBytes { raw -> [Int64]? in
            if entry.dtype == .i64 { return (0 ..< raw.count / 8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) } }
            let converted = (0 ..< raw.count / 4).map { Int64(exactly: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) }
            return converted.contains(nil) ? nil : converted.map { $0! }
        }
    }
}

import Foundation

/// A minimal safetensors reader for the reference fixtures: 8-byte little-endian header length,
/// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then raw
/// little-endian tensors. Only F32 is needed.
struct SafeTensors {
    struct Entry { var shape: [Int]; var values: [Float] }
    var tensors: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    enum ReadError: Error, CustomStringConvertible {
        case malformed(String, String)
        var description: String {
            switch self { case .malformed(let file, let why): return "\(file): \(why)" }
        }
    }

    init(url: URL) throws {
        let file = url.lastPathComponent
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw ReadError.malformed(file, "shorter than its 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard 8 + headerLength <= data.count else { throw ReadError.malformed(file, "header length \(headerLength) beyond the file") }
        let json = try JSONSerialization.jsonObject(with: data.subdata(in: 8 ..< 8 + headerLength))
        guard let header = json as? [String: Any] else { throw ReadError.malformed(file, "header is not a JSON object") }
        let body = data.subdata(in: 8 + headerLength ..< data.count)
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw ReadError.malformed(file, "bad entry \(name)") }
            guard dtype == "F32" else { throw ReadError.malformed(file, "\(name): dtype \(dtype), expected F32") }
            let (start, end) = (offsets[0], offsets[1])
            let count = shape.reduce(1, *)
            guard end - start == 4 * count, end <= body.count else { throw ReadError.malformed(file, "\(name): bad offsets") }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                body.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start ..< end])) }
            }
            // The format is little-endian; so is every machine fkp runs on, but say so.
            if Int(littleEndian: 1) != 1 { values = values.map { Float(bitPattern: $0.bitPattern.byteSwapped) } }
            tensors[name] = Entry(shape: shape, values: values)
        }
    }

    func names(prefix: String) -> [String] {
        tensors.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    subscript(name: String) -> Entry? { tensors[name] }
}

/// Element-wise comparison that remembers the worst element.
struct Comparison {
    var maxAbs: Float = 0
    var maxRel: Float = 0
    var failures: [String] = []
    let atol: Float, rtol: Float

    init(atol: Float, rtol: Float) { self.atol = atol; self.rtol = rtol }

    /// Fails where |got − want| > atol + rtol·|want|.
    mutating func check(_ name: String, _ got: [Float], _ want: [Float]) {
        guard got.count == want.count else {
            failures.append("\(name): \(got.count) values, expected \(want.count)")
            return
        }
        var worst: (Float, Int) = (0, -1)
        for i in 0 ..< got.count {
            let d = abs(got[i] - want[i])
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d / max(abs(want[i]), 1e-3))
            let excess = d - (atol + rtol * abs(want[i]))
            if excess > 0 && excess > worst.0 { worst = (excess, i) }
            if !d.isFinite || got[i].isNaN { worst = (.infinity, i) }
        }
        if worst.1 >= 0 {
            let i = worst.1
            failures.append("\(name)[\(i)]: got \(got[i]), expected \(want[i]) (|diff| \(abs(got[i] - want[i])))")
        }
    }
}

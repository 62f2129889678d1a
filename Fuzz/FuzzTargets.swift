import Foundation

/// The fuzz targets: each feeds one input to a parser the project runs on untrusted files, the way
/// the loaders do. A thrown error is the expected outcome for junk; the harness checks it is the
/// one-line message naming the file that users see. A crash, hang, leak or ASan report is a finding.
/// Built together with the parser sources by `Scripts/fuzz` (libFuzzer supplies `main`).
enum FuzzTargets {
    /// Small limits keep one execution cheap: the limits themselves are what is being checked.
    static let maxPixels = 1 << 22
    static let maxDecodedBytes = 64 << 20

    static let all: [String: (Data) -> Void] = [
        "xml": { data in expectDataError("fuzz.xml") { _ = try DlibXMLDataset.parseFaces(data, path: "fuzz.xml") } },
        "pts": { data in
            expectDataError("fuzz.pts") {
                _ = try PTSDataset.parsePTS(AnnotationText(data: data, path: "fuzz.pts"), pointCount: KeypointMarkup.ibug68.count)
            }
        },
        "asf": { data in expectDataError("fuzz.asf") { _ = try IMMDataset.parseASF(AnnotationText(data: data, path: "fuzz.asf")) } },
        "png": { data in
            expectDataError("fuzz.png") {
                _ = try data.withUnsafeBytes { try ImageCodec.decodePNG($0, source: "fuzz.png", maxPixels: maxPixels) }
            }
        },
        "jpeg": { data in
            expectDataError("fuzz.jpg") {
                _ = try data.withUnsafeBytes { try ImageCodec.decodeJPEG($0, source: "fuzz.jpg", maxPixels: maxPixels) }
            }
        },
        "safetensors": { data in
            // A parsed file must hand out every tensor it accepted without trapping.
            guard let file = try? SafeTensors(parsing: [UInt8](data)) else { return }
            for name in file.order { _ = file.floats(name); _ = file.int64s(name) }
        },
        "zstd": { data in
            // The checkpoint frame reader: decompress (capped) then parse the payload, as CheckpointFile.parse does.
            guard let payload = try? data.withUnsafeBytes({ try Zstd.decompress($0, maxBytes: maxDecodedBytes) }) else { return }
            guard let file = try? SafeTensors(parsing: payload) else { return }
            for name in file.order { _ = file.floats(name) }
        },
    ]

    /// Runs `body`; a DataError must be one line that names `file`, anything else is a bug.
    static func expectDataError(_ file: String, _ body: () throws -> Void) {
        do { try body() } catch let error as DataError {
            let line = error.description
            if !line.contains(file) || line.contains("\n") { fatalError("bad error message: \(line)") }
        } catch { fatalError("unexpected error type: \(error)") }
    }
}

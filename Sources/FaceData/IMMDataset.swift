import Foundation

/// The IMM face database: `NN-Tg.jpg` photos (person NN, view T, gender g) with `.asf` shape files
/// holding 58 points in coordinates relative to the image size. The whole photo is the face crop.
public struct IMMDataset: FaceDataset, PersonLabelled {
    struct Entry: Sendable {
        var imagePath: String
        var relative: [Float]
        var person: String
    }

    public let folder: String
    let entries: [Entry]
    /// The pixel limit the images are decoded under (`DatasetOptions.maxPixels`).
    let maxPixels: Int

    public var name: String { "IMM (\(count) faces)" }
    public var count: Int { entries.count }
    public var markup: KeypointMarkup { .imm58 }

    /// Reads every `.asf` in `folder` (sorted by name). Malformed shape files are errors; a missing
    /// photo is skipped (or an error when `options.strict`).
    public init(folder: String, options: DatasetOptions = DatasetOptions()) throws {
        let url = URL(fileURLWithPath: folder)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw DataError(file: folder, "cannot list IMM folder")
        }
        var entries: [Entry] = []
        for name in names.sorted() where name.lowercased().hasSuffix(".asf") {
            let asf = url.appendingPathComponent(name)
            let (relative, host, hostLine) = try IMMDataset.parseASF(path: asf.path)
            let image = url.appendingPathComponent(host ?? (asf.deletingPathExtension().lastPathComponent + ".jpg"))
            guard FileManager.default.fileExists(atPath: image.path) else {
                try options.skipOrThrow(DataError(file: asf.path, line: hostLine, "image \(image.lastPathComponent) not found"))
                continue
            }
            let person = String(name.prefix(while: { $0 != "-" }))
            entries.append(Entry(imagePath: image.path, relative: relative, person: person))
        }
        guard !entries.isEmpty else { throw DataError(file: folder, "no IMM .asf shape files with photos found") }
        self.folder = folder
        self.entries = entries
        maxPixels = options.maxPixels
    }

    /// Parses one `.asf`: comments (#), the point count, one line per point
    /// `<path> <type> <x rel> <y rel> <point#> <from> <to>`, then the host image's file name.
    static func parseASF(path: String) throws -> (relative: [Float], host: String?, hostLine: Int?) {
        try parseASF(try AnnotationText(path: path))
    }

    static func parseASF(_ text: AnnotationText) throws -> (relative: [Float], host: String?, hostLine: Int?) {
        var content = text.lines.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty && !$0.text.hasPrefix("#") }
        guard let header = content.first else { throw text.error(nil, "empty shape file (no point count)") }
        content.removeFirst()
        let countField = header.text.trimmingCharacters(in: .whitespaces)
        guard let n = Int(countField) else {
            throw text.error(header.number, "expected the number of points, found '\(countField)'")
        }
        guard n == KeypointMarkup.imm58.count else {
            throw text.error(header.number, "expected \(KeypointMarkup.imm58.count) points (IMM markup), file declares \(n)")
        }
        var relative: [Float] = []
        for index in 0..<n {
            guard index < content.count, content[index].text.fields.count >= 4 else {
                throw text.error(index < content.count ? content[index].number : text.lines.count,
                                 "expected \(n) point lines, found \(index)")
            }
            let line = content[index]
            let fields = line.text.fields
            relative.append(try parseNumber(fields[2], what: "x of point \(index)", in: text, line: line.number))
            relative.append(try parseNumber(fields[3], what: "y of point \(index)", in: text, line: line.number))
        }
        let rest = content.dropFirst(n)
        if let extra = rest.first, extra.text.fields.count >= 4 {
            throw text.error(extra.number, "more point lines than the declared \(n)")
        }
        let host = rest.first.map { String($0.text.trimmingCharacters(in: .whitespaces)) }
        return (relative, host, rest.first?.number)
    }

    public func record(at index: Int) throws -> FaceRecord {
        let entry = entries[index]
        let image = try ImageCodec.readGrey(path: entry.imagePath, maxPixels: maxPixels)
        var points = entry.relative
        for i in stride(from: 0, to: points.count, by: 2) {
            points[i] *= Float(image.width); points[i + 1] *= Float(image.height)
        }
        return FaceRecord(image: image, keypoints: points, box: nil, source: entry.imagePath)
    }

    /// The person number NN of `NN-Tg.jpg`.
    public func person(at index: Int) -> String { entries[index].person }
}

import Foundation

/// The original 300-W layout: a `.pts` file beside each image (`afw/`, `helen/trainset/`, `lfpw/`,
/// `ibug/`, `01_Indoor/`, `02_Outdoor/`, ... searched recursively):
/// `version: 1`, `n_points: 68`, `{`, one `x y` line per point, `}`. The face box is the keypoints'
/// extent. Coordinates in .pts files are 1-based (Matlab), so 1 is subtracted.
public struct PTSDataset: FaceDataset, PersonLabelled {
    struct Entry: Sendable {
        var imagePath: String
        var keypoints: [Float]
    }

    public let folder: String
    let entries: [Entry]
    /// The pixel limit the images are decoded under (`DatasetOptions.maxPixels`).
    let maxPixels: Int
    public var name: String { "300-W .pts \(URL(fileURLWithPath: folder).lastPathComponent) (\(count) faces)" }
    public var count: Int { entries.count }
    public var markup: KeypointMarkup { .ibug68 }

    /// Reads every `.pts` under `folder` (sorted by path). Malformed files are errors naming file and
    /// line; a missing or unreadable image, or keypoints outside it, skip the face (errors when strict).
    public init(folder: String, options: DatasetOptions = DatasetOptions()) throws {
        let root = URL(fileURLWithPath: folder)
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
            throw DataError(file: folder, "cannot list .pts folder")
        }
        var files: [URL] = []
        for case let url as URL in walker where url.pathExtension.lowercased() == "pts" { files.append(url) }
        files.sort { $0.path < $1.path }
        var entries: [Entry] = []
        for file in files {
            let points = try PTSDataset.parsePTS(path: file.path, pointCount: KeypointMarkup.ibug68.count)
            guard let image = imageBeside(file) else {
                try options.skipOrThrow(DataError(file: file.path, "no image beside it (same name, .jpg or .png)"))
                continue
            }
            do {
                let size = try ImageCodec.size(path: image.path, maxPixels: options.maxPixels)
                guard keypointsInside(points, width: size.width, height: size.height) else {
                    try options.skipOrThrow(DataError(file: file.path, "keypoints leave the \(size.width)x\(size.height) image"))
                    continue
                }
            } catch let error as DataError where !options.strict {
                options.skips.record(error)
                continue
            }
            entries.append(Entry(imagePath: image.path, keypoints: points))
        }
        guard !entries.isEmpty else { throw DataError(file: folder, "no usable .pts faces found") }
        self.folder = folder
        self.entries = entries
        maxPixels = options.maxPixels
    }

    static func parsePTS(path: String, pointCount: Int) throws -> [Float] {
        try parsePTS(try AnnotationText(path: path), pointCount: pointCount)
    }

    static func parsePTS(_ text: AnnotationText, pointCount: Int) throws -> [Float] {
        let lines = text.lines.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
        func header(_ position: Int, _ key: String) throws -> (Substring, Int) {
            guard position < lines.count else { throw text.error(text.lines.count, "missing '\(key):' header") }
            let line = lines[position]
            let parts = line.text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key else {
                throw text.error(line.number, "expected '\(key): ...', found '\(line.text)'")
            }
            return (Substring(parts[1].trimmingCharacters(in: .whitespaces)), line.number)
        }
        let (version, versionLine) = try header(0, "version")
        guard version == "1" else { throw text.error(versionLine, "unsupported .pts version '\(version)'") }
        let (countText, countLine) = try header(1, "n_points")
        guard let n = Int(countText) else { throw text.error(countLine, "n_points '\(countText)' is not a number") }
        guard n == pointCount else { throw text.error(countLine, "n_points is \(n), expected \(pointCount)") }
        guard lines.count > 2, lines[2].text.trimmingCharacters(in: .whitespaces) == "{" else {
            throw text.error(lines.count > 2 ? lines[2].number : text.lines.count, "expected '{' before the points")
        }
        var points: [Float] = []
        for index in 0..<n {
            let position = 3 + index
            guard position < lines.count, lines[position].text.trimmingCharacters(in: .whitespaces) != "}" else {
                throw text.error(position < lines.count ? lines[position].number : text.lines.count,
                                 "found \(index) points, n_points says \(n)")
            }
            let line = lines[position]
            let fields = line.text.fields
            guard fields.count == 2 else { throw text.error(line.number, "expected 'x y', found '\(line.text)'") }
            points.append(try parseNumber(fields[0], what: "x of point \(index)", in: text, line: line.number) - 1)
            points.append(try parseNumber(fields[1], what: "y of point \(index)", in: text, line: line.number) - 1)
        }
        let closing = 3 + n
        guard closing < lines.count, lines[closing].text.trimmingCharacters(in: .whitespaces) == "}" else {
            throw text.error(closing < lines.count ? lines[closing].number : text.lines.count,
                             "expected '}' after \(n) points (more points than n_points?)")
        }
        return points
    }

    public func record(at index: Int) throws -> FaceRecord {
        let entry = entries[index]
        var minX = Float.infinity, minY = Float.infinity, maxX = -Float.infinity, maxY = -Float.infinity
        for i in stride(from: 0, to: entry.keypoints.count, by: 2) {
            minX = min(minX, entry.keypoints[i]); maxX = max(maxX, entry.keypoints[i])
            minY = min(minY, entry.keypoints[i + 1]); maxY = max(maxY, entry.keypoints[i + 1])
        }
        return FaceRecord(image: try ImageCodec.readGrey(path: entry.imagePath, maxPixels: maxPixels), keypoints: entry.keypoints,
                          box: Box(x: minX, y: minY, width: maxX - minX, height: maxY - minY), source: entry.imagePath)
    }

    /// 300-W has no identities: each image is its own person (so a by-person split is a random split).
    public func person(at index: Int) -> String { entries[index].imagePath }
}

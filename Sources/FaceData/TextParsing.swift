import Foundation

/// Line-by-line reading of small annotation files, with errors that name the file and the line.
struct AnnotationText {
    let path: String
    /// (1-based line number, line text) pairs.
    let lines: [(number: Int, text: Substring)]

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(file: path, "cannot read annotation file")
        }
        self.init(data: data, path: path)
    }

    /// The lines of annotation bytes; `path` names the file in errors.
    init(data: Data, path: String) {
        // Latin-1 never fails to decode, so a stray byte cannot hide the real problem.
        let text = String(data: data, encoding: .utf8) ?? String(decoding: data.map { $0 < 0x80 ? $0 : 0x3F }, as: UTF8.self)
        self.path = path
        // Any line break ends a line: "\r\n" is one Character in Swift, so splitting on "\n" alone
        // left Windows files as one long line (found by Scripts/fuzz).
        lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
            .map { ($0.offset + 1, $0.element) }
    }

    func error(_ line: Int?, _ message: String) -> DataError { DataError(file: path, line: line, message) }
}

extension Substring {
    /// Fields separated by spaces and tabs.
    var fields: [Substring] { split(whereSeparator: { $0 == " " || $0 == "\t" }) }
}

/// Parses a finite number or throws a one-line error naming the field.
func parseNumber(_ field: Substring, what: String, in text: AnnotationText, line: Int) throws -> Float {
    guard let value = Float(field), value.isFinite else {
        throw text.error(line, "\(what): '\(field)' is not a number")
    }
    return value
}

/// Whether every keypoint lies inside a width×height image (pixel centres 0...width-1).
func keypointsInside(_ points: [Float], width: Int, height: Int) -> Bool {
    for i in stride(from: 0, to: points.count, by: 2) {
        let x = points[i], y = points[i + 1]
        if x < 0 || y < 0 || x > Float(width - 1) || y > Float(height - 1) { return false }
    }
    return true
}

/// The image beside an annotation file: same stem, any of the usual extensions.
func imageBeside(_ annotation: URL) -> URL? {
    let stem = annotation.deletingPathExtension()
    for ext in ["jpg", "png", "jpeg", "JPG", "PNG", "JPEG"] {
        let candidate = stem.appendingPathExtension(ext)
        if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
    }
    return nil
}

/// Datasets that know which person each face shows, for splits that keep people on one side.
public protocol PersonLabelled {
    func person(at index: Int) -> String
}

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The dlib / iBUG 300-W XML layout (`labels_ibug_300W_train.xml`): `<image file=...>` relative to
/// the XML's folder, each holding `<box top left width height>` faces with 68 `<part name x y>`.
/// Every box is one face. Boxes marked `ignore='1'` are left out.
public struct DlibXMLDataset: FaceDataset, PersonLabelled {
    struct Entry: Sendable {
        var imagePath: String
        var box: Box
        var keypoints: [Float]
    }

    public let path: String
    let entries: [Entry]
    public var name: String { "dlib XML \(URL(fileURLWithPath: path).lastPathComponent) (\(count) faces)" }
    public var count: Int { entries.count }
    public var markup: KeypointMarkup { .ibug68 }

    /// Parses the XML and reads each image's header once: faces whose image is missing or unreadable,
    /// or whose keypoints leave the image, are skipped and counted (errors when `options.strict`).
    /// Malformed XML, a wrong point count or a non-numeric attribute is an error naming file and line.
    public init(xmlPath: String, options: DatasetOptions = DatasetOptions()) throws {
        guard let data = FileManager.default.contents(atPath: xmlPath) else {
            throw DataError(file: xmlPath, "cannot read XML file")
        }
        let collector = DlibXMLCollector(path: xmlPath, pointCount: KeypointMarkup.ibug68.count)
        let parser = XMLParser(data: data)
        parser.delegate = collector
        let parsed = parser.parse()
        if let error = collector.error { throw error }
        if !parsed {
            let code = (parser.parserError as NSError?)?.code ?? 0
            let known = [4: "empty document", 5: "premature end of document", 76: "mismatched closing tag"]
            throw DataError(file: xmlPath, line: collector.syntaxErrorLine ?? parser.lineNumber,
                            "malformed XML (\(known[code] ?? "XMLParser error \(code)"))")
        }
        let folder = URL(fileURLWithPath: xmlPath).deletingLastPathComponent()
        var sizes: [String: (width: Int, height: Int)] = [:]
        var entries: [Entry] = []
        for face in collector.faces {
            let image = face.file.hasPrefix("/") ? face.file : folder.appendingPathComponent(face.file).path
            let size: (width: Int, height: Int)
            if let known = sizes[image] {
                size = known
            } else {
                guard FileManager.default.fileExists(atPath: image) else {
                    try options.skipOrThrow(DataError(file: xmlPath, line: face.line, "image \(face.file) not found"), source: image)
                    continue
                }
                do { size = try ImageCodec.size(path: image) } catch let error as DataError {
                    try options.skipOrThrow(error, source: image)
                    continue
                }
                sizes[image] = size
            }
            guard keypointsInside(face.keypoints, width: size.width, height: size.height) else {
                try options.skipOrThrow(DataError(file: xmlPath, line: face.line,
                    "keypoints of \(face.file) leave the \(size.width)x\(size.height) image"))
                continue
            }
            entries.append(Entry(imagePath: image, box: face.box, keypoints: face.keypoints))
        }
        guard !entries.isEmpty else { throw DataError(file: xmlPath, "no usable faces in the XML") }
        self.path = xmlPath
        self.entries = entries
    }

    public func record(at index: Int) throws -> FaceRecord {
        let entry = entries[index]
        return FaceRecord(image: try ImageCodec.readGrey(path: entry.imagePath), keypoints: entry.keypoints,
                          box: entry.box, source: entry.imagePath)
    }

    /// The image name without its trailing frame number (`Luis_Fonsi_21.jpg` → `Luis_Fonsi`).
    public func person(at index: Int) -> String {
        let stem = URL(fileURLWithPath: entries[index].imagePath).deletingPathExtension().lastPathComponent
        guard let underscore = stem.lastIndex(of: "_"), stem[stem.index(after: underscore)...].allSatisfy(\.isNumber)
        else { return stem }
        return String(stem[..<underscore])
    }
}

/// XMLParser delegate: gathers boxes and parts, remembering the line of each box for messages.
final class DlibXMLCollector: NSObject, XMLParserDelegate {
    struct Face { var file: String; var line: Int; var box: Box; var keypoints: [Float] }

    let path: String
    let pointCount: Int
    var faces: [Face] = []
    var error: DataError?
    /// Where the XML parser first choked (its own line number at the end of parsing can be later).
    var syntaxErrorLine: Int?
    private var currentFile: String?
    private var current: Face?
    private var seen: [Bool] = []
    private var ignoring = false

    init(path: String, pointCount: Int) { self.path = path; self.pointCount = pointCount }

    private func fail(_ parser: XMLParser, _ message: String) {
        if error == nil { error = DataError(file: path, line: parser.lineNumber, message) }
        parser.abortParsing()
    }

    private func number(_ attributes: [String: String], _ key: String, _ element: String, _ parser: XMLParser) -> Float? {
        guard let text = attributes[key] else { fail(parser, "<\(element)> lacks the '\(key)' attribute"); return nil }
        guard let value = Float(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            fail(parser, "<\(element)> attribute \(key)='\(text)' is not a number"); return nil
        }
        return value
    }

    func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        guard error == nil else { return }
        switch element {
        case "image":
            guard let file = attributes["file"], !file.isEmpty else { return fail(parser, "<image> lacks the 'file' attribute") }
            currentFile = file
        case "box":
            guard let file = currentFile else { return fail(parser, "<box> outside an <image>") }
            guard let top = number(attributes, "top", element, parser), let left = number(attributes, "left", element, parser),
                  let width = number(attributes, "width", element, parser),
                  let height = number(attributes, "height", element, parser) else { return }
            ignoring = attributes["ignore"] == "1"
            current = Face(file: file, line: parser.lineNumber, box: Box(x: left, y: top, width: width, height: height),
                           keypoints: [Float](repeating: 0, count: 2 * pointCount))
            seen = [Bool](repeating: false, count: pointCount)
        case "part":
            guard current != nil else { return fail(parser, "<part> outside a <box>") }
            guard let nameText = attributes["name"], let index = Int(nameText), index >= 0, index < pointCount else {
                return fail(parser, "<part> name '\(attributes["name"] ?? "")' is not a point number 0...\(pointCount - 1)")
            }
            guard let x = number(attributes, "x", element, parser), let y = number(attributes, "y", element, parser) else { return }
            if seen[index] { return fail(parser, "point \(nameText) given twice") }
            seen[index] = true
            current!.keypoints[2 * index] = x
            current!.keypoints[2 * index + 1] = y
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
        if syntaxErrorLine == nil { syntaxErrorLine = parser.lineNumber }
    }

    func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
        guard error == nil else { return }
        if element == "image" { currentFile = nil }
        if element == "box", let face = current {
            let found = seen.filter { $0 }.count
            if found != pointCount && !ignoring {
                error = DataError(file: path, line: face.line, "box has \(found) <part> points, expected \(pointCount)")
                parser.abortParsing()
                return
            }
            if !ignoring { faces.append(face) }
            current = nil
        }
    }
}

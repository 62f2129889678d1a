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
    /// The pixel limit the images are decoded under (`DatasetOptions.maxPixels`).
    let maxPixels: Int
    public var name: String { "dlib XML \(URL(fileURLWithPath: path).lastPathComponent) (\(count) faces)" }
    public var count: Int { entries.count }
    public var markup: KeypointMarkup { .ibug68 }

    /// Parses the XML and reads each image's header once: faces whose image is missing, unreadable
    /// or over the pixel limit, whose box is empty or entirely outside the image, or whose keypoints
    /// leave the image, are skipped and counted (errors naming file and line when `options.strict`).
    /// Malformed XML, a wrong point count or a non-numeric attribute is an error naming file and line.
    public init(xmlPath: String, options: DatasetOptions = DatasetOptions()) throws {
        guard let data = FileManager.default.contents(atPath: xmlPath) else {
            throw DataError(file: xmlPath, "cannot read XML file")
        }
        let faces = try DlibXMLDataset.parseFaces(data, path: xmlPath)
        let folder = URL(fileURLWithPath: xmlPath).deletingLastPathComponent()
        var sizes: [String: (width: Int, height: Int)] = [:]
        var entries: [Entry] = []
        for face in faces {
            // An impossible box is a bad sample like keypoints outside the image: skipped and
            // counted (an error naming file and line with --strict), so one bad label in
            // thousands does not stop a run, and the crop never divides by a zero size.
            guard face.box.width > 0, face.box.height > 0 else {
                try options.skipOrThrow(DataError(file: xmlPath, line: face.line,
                    "box of \(face.file) has width \(face.box.width) and height \(face.box.height); both must be positive"))
                continue
            }
            let image = face.file.hasPrefix("/") ? face.file : folder.appendingPathComponent(face.file).path
            let size: (width: Int, height: Int)
            if let known = sizes[image] {
                size = known
            } else {
                guard FileManager.default.fileExists(atPath: image) else {
                    try options.skipOrThrow(DataError(file: xmlPath, line: face.line, "image \(face.file) not found"), source: image)
                    continue
                }
                do { size = try ImageCodec.size(path: image, maxPixels: options.maxPixels) } catch let error as DataError {
                    try options.skipOrThrow(error, source: image)
                    continue
                }
                sizes[image] = size
            }
            let b = face.box
            guard b.x < Float(size.width), b.y < Float(size.height), b.x + b.width > 0, b.y + b.height > 0 else {
                try options.skipOrThrow(DataError(file: xmlPath, line: face.line,
                    "box of \(face.file) (left \(b.x), top \(b.y), \(b.width)x\(b.height)) lies entirely outside the \(size.width)x\(size.height) image"))
                continue
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
        maxPixels = options.maxPixels
    }

    /// The faces (boxes with all their points, `ignore='1'` left out) of XML bytes; `path` names
    /// the file in errors. Separate from the file system so the parser can be fuzzed on bytes.
    static func parseFaces(_ data: Data, path: String) throws -> [DlibXMLCollector.Face] {
        let collector = DlibXMLCollector(path: path, pointCount: KeypointMarkup.ibug68.count)
        let parser = XMLParser(data: try utf8Document(data, path: path))
        parser.delegate = collector
        let parsed = parser.parse()
        if let error = collector.error { throw error }
        if !parsed {
            let code = (parser.parserError as NSError?)?.code ?? 0
            let known = [4: "empty document", 5: "premature end of document", 76: "mismatched closing tag"]
            throw DataError(file: path, line: collector.syntaxErrorLine ?? parser.lineNumber,
                            "malformed XML (\(known[code] ?? "XMLParser error \(code)"))")
        }
        return collector.faces
    }

    /// The document as UTF-8 without its XML declaration. Foundation's XMLParser (swift-corelibs)
    /// traps on element names that are not valid UTF-8, which libxml2 passes through when the
    /// declaration is broken or absent (found by Scripts/fuzz), so the parser only ever gets UTF-8:
    /// ISO-8859-1 (what dlib writes) and undeclared non-UTF-8 bytes are read as Latin-1, which
    /// cannot fail. The declaration is blanked with spaces (like every processing instruction), so
    /// line numbers stay right.
    static func utf8Document(_ data: Data, path: String) throws -> Data {
        var bytes = [UInt8](data)
        var encoding = "utf-8"
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let start = bytes.starts(with: bom) ? 3 : 0
        if bytes[start...].starts(with: Array("<?xml".utf8)), let end = bytes[start...].firstRange(of: Array("?>".utf8))?.upperBound {
            let declaration = String(decoding: bytes[start ..< end], as: UTF8.self).lowercased()
            if let range = declaration.range(of: #"encoding\s*=\s*['"][a-z0-9._-]{1,40}['"]"#, options: .regularExpression) {
                encoding = declaration[range].split(whereSeparator: { $0 == "'" || $0 == "\"" }).dropFirst().first.map(String.init) ?? ""
            } else if declaration.contains("encoding") {
                encoding = "(unreadable)"
            }
        }
        blankProcessingInstructions(&bytes)
        switch encoding {
        case "utf-8", "utf8":
            if String(validating: bytes, as: UTF8.self) != nil { return Data(bytes) }
        case "iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii":
            break
        default:
            throw DataError(file: path, "unsupported XML encoding '\(encoding)' (UTF-8 and ISO-8859-1 are read)")
        }
        // Latin-1 maps each byte to the code point of the same value: ASCII stays, the rest takes
        // two UTF-8 bytes. (A byte loop: going through String made opening a 10 MB XML 2.5 s slower.)
        let high = bytes.reduce(0) { $0 + ($1 >= 0x80 ? 1 : 0) }
        if high == 0 { return Data(bytes) }
        var utf8 = [UInt8]()
        utf8.reserveCapacity(bytes.count + high)
        for b in bytes {
            if b < 0x80 { utf8.append(b) } else { utf8.append(0xC0 | b >> 6); utf8.append(0x80 | b & 0x3F) }
        }
        return Data(utf8)
    }

    /// Blanks every processing instruction `<?...?>` (dlib's `<?xml-stylesheet ...?>`; nothing
    /// fkp reads): XMLParser dereferences NULL on one without data, `<?x?>` (found by Scripts/fuzz).
    static func blankProcessingInstructions(_ bytes: inout [UInt8]) {
        let less = UInt8(ascii: "<"), question = UInt8(ascii: "?"), greater = UInt8(ascii: ">")
        var i = 0
        while i + 1 < bytes.count {
            guard bytes[i] == less && bytes[i + 1] == question else { i += 1; continue }
            var j = i + 2
            while j + 1 < bytes.count && !(bytes[j] == question && bytes[j + 1] == greater) { j += 1 }
            let end = j + 1 < bytes.count ? j + 2 : bytes.count   // unterminated: to the end
            for k in i ..< end where bytes[k] != UInt8(ascii: "\n") { bytes[k] = UInt8(ascii: " ") }
            i = end
        }
    }

    public func record(at index: Int) throws -> FaceRecord {
        let entry = entries[index]
        return FaceRecord(image: try ImageCodec.readGrey(path: entry.imagePath, maxPixels: maxPixels), keypoints: entry.keypoints,
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

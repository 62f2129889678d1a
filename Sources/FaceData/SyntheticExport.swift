/// Exports a dataset to disk: PNG images plus a dlib-style `labels.xml` (the layout of iBUG 300-W's
/// `labels_ibug_300W_train.xml`), so synthetic faces can be inspected with any viewer or fed to other
/// tools; and a preview sheet with the keypoints marked, for eyeballing the data.
import CPNG
import Foundation

/// Writes faces 0..<count of `dataset` as `directory/images/000001.png`, ... and `directory/labels.xml`.
/// Coordinates are rounded to whole pixels, as dlib's parser requires integers; the box is the record's
/// box (rounded outward) or the whole image when it has none. `count` may exceed `dataset.count` for
/// datasets that generate faces (SyntheticFaces).
public func writeDlibXML(dataset: FaceDataset, count: Int? = nil, to directory: URL) throws {
    let total = count ?? dataset.count
    let images = directory.appendingPathComponent("images")
    do {
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    } catch {
        throw DataError(file: images.path, "cannot create directory: \(error.localizedDescription)")
    }
    var xml = """
        <?xml version='1.0' encoding='ISO-8859-1'?>
        <?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>
        <dataset>
        <name>\(xmlEscaped(dataset.name))</name>
        <comment>\(total) faces, \(dataset.markup.count)-point \(xmlEscaped(dataset.markup.name)) markup, written by fkp.</comment>
        <images>

        """
    for index in 0..<total {
        let record = try dataset.record(at: index)
        let file = String(format: "images/%06d.png", index + 1)
        try ImageCodec.writePNG(record.image, to: directory.appendingPathComponent(file).path)
        let box = record.box ?? Box(x: 0, y: 0, width: Float(record.image.width), height: Float(record.image.height))
        let left = Int(box.x.rounded(.down)), top = Int(box.y.rounded(.down))
        let width = Int((box.x + box.width).rounded(.up)) - left
        let height = Int((box.y + box.height).rounded(.up)) - top
        xml += "  <image file='\(file)'>\n"
        xml += "    <box top='\(top)' left='\(left)' width='\(width)' height='\(height)'>\n"
        for p in 0..<record.keypointCount {
            let x = Int(record.keypoints[2 * p].rounded()), y = Int(record.keypoints[2 * p + 1].rounded())
            xml += "      <part name='\(String(format: "%02d", p))' x='\(x)' y='\(y)'/>\n"
        }
        xml += "    </box>\n  </image>\n"
    }
    xml += "</images>\n</dataset>\n"
    let labels = directory.appendingPathComponent("labels.xml")
    do {
        try xml.write(to: labels, atomically: true, encoding: .utf8)
    } catch {
        throw DataError(file: labels.path, "cannot write: \(error.localizedDescription)")
    }
}

/// Writes faces 0..<count of `dataset` side by side in a grid (each scaled to `cell` pixels), with
/// every keypoint marked by a small dark-ringed white dot (unless `markKeypoints` is false): a quick
/// look at data and labels. Faces start at index `first`.
public func writeKeypointPreview(dataset: FaceDataset, count: Int, first: Int = 0, columns: Int = 4, cell: Int = 256,
                                 markKeypoints: Bool = true, to file: URL) throws {
    let rows = (count + columns - 1) / columns
    var sheet = GreyImage(width: columns * cell, height: max(rows, 1) * cell, fill: 0.5)
    for index in 0..<count {
        let record = try dataset.record(at: first + index)
        let ox = (index % columns) * cell, oy = (index / columns) * cell
        let image = record.image
        let sx = Float(image.width) / Float(cell), sy = Float(image.height) / Float(cell)
        for y in 0..<cell {
            let srcRow = min(Int((Float(y) + 0.5) * sy), image.height - 1) * image.width
            for x in 0..<cell {
                let src = min(Int((Float(x) + 0.5) * sx), image.width - 1)
                sheet.pixels[(oy + y) * sheet.width + ox + x] = image.pixels[srcRow + src]
            }
        }
        for p in 0..<(markKeypoints ? record.keypointCount : 0) {
            let cx = Int(record.keypoints[2 * p] / sx), cy = Int(record.keypoints[2 * p + 1] / sy)
            for dy in -2...2 {
                for dx in -2...2 where abs(dx) + abs(dy) <= 3 {
                    let x = cx + dx, y = cy + dy
                    guard x >= 0, y >= 0, x < cell, y < cell else { continue }
                    let ring = abs(dx) == 2 || abs(dy) == 2
                    sheet.pixels[(oy + y) * sheet.width + ox + x] = ring ? 0 : 1
                }
            }
        }
    }
    try ImageCodec.writePNG(sheet, to: file.path)
}

private func xmlEscaped(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
}

import Foundation

/// Opens a dataset by looking at what `path` is:
/// - `synthetic` or `synthetic:N`: generated faces (`SyntheticFaces`, 2,000 by default, seed 1);
/// - an `.xml` file, or a folder holding one (`*train*.xml` preferred): dlib / iBUG 300-W XML;
/// - a folder of `.asf` files: the IMM face database;
/// - a folder tree with `.pts` files: the original 300-W layout.
/// Skipped samples are counted in `options.skips`; with `options.strict` the first one is an error.
public func openDataset(path: String, options: DatasetOptions = DatasetOptions()) throws -> any FaceDataset {
    if path == "synthetic" || path.hasPrefix("synthetic:") {
        var count = 2000
        if path.hasPrefix("synthetic:") {
            guard let n = Int(path.dropFirst("synthetic:".count)), n > 0 else {
                throw DataError(file: path, "expected synthetic:N with a positive count N")
            }
            count = n
        }
        return SyntheticFaces(count: count, seed: 1)
    }
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
        throw DataError(file: path, "no such file or folder")
    }
    if !isFolder.boolValue {
        guard path.lowercased().hasSuffix(".xml") else {
            throw DataError(file: path, "not a dataset: expected a dlib .xml file or a dataset folder")
        }
        return try DlibXMLDataset(xmlPath: path, options: options)
    }
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
        throw DataError(file: path, "cannot list folder")
    }
    let folder = URL(fileURLWithPath: path)
    if names.contains(where: { $0.lowercased().hasSuffix(".asf") }) {
        return try IMMDataset(folder: path, options: options)
    }
    let xmls = names.filter { $0.lowercased().hasSuffix(".xml") }.sorted()
    if !xmls.isEmpty {
        let training = xmls.filter { $0.lowercased().contains("train") }
        let chosen = xmls.count == 1 ? xmls[0] : training.count == 1 ? training[0] : nil
        guard let chosen else {
            throw DataError(file: path, "several XML files (\(xmls.joined(separator: ", "))): name one")
        }
        return try DlibXMLDataset(xmlPath: folder.appendingPathComponent(chosen).path, options: options)
    }
    if let walker = FileManager.default.enumerator(atPath: path),
       walker.contains(where: { ($0 as? String)?.lowercased().hasSuffix(".pts") == true }) {
        return try PTSDataset(folder: path, options: options)
    }
    throw DataError(file: path, "no dataset found (expected IMM .asf files, a dlib .xml, or 300-W .pts files)")
}

import Foundation
import SwiftMPI

/// What `--checkpoint` (eval, predict) and `--resume` (train) accept, resolved in one place:
/// a checkpoint file, a run folder's `latest` file, or the run folder itself.
extension CheckpointFile {
    /// The checkpoint `path` means: a checkpoint file itself; a `latest` file → the checkpoint it
    /// names (beside it); a run folder → its `latest` checkpoint, else its newest `step-*` file,
    /// else nil (a folder without checkpoints: a fresh start for `--resume auto`).
    public static func resolve(_ path: String) throws -> URL? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(path: path, message: "no such checkpoint file or run folder")
        }
        let url = URL(fileURLWithPath: path)
        if !isDirectory.boolValue {
            guard url.lastPathComponent == "latest" else { return url }
            let named = try latestName(in: url)
            let target = url.deletingLastPathComponent().appendingPathComponent(named)
            guard FileManager.default.fileExists(atPath: target.path) else {
                throw Failure(path: path, message: "names \(named), which does not exist beside it")
            }
            return target
        }
        let latest = url.appendingPathComponent("latest")
        if let named = try? latestName(in: latest) {
            let candidate = url.appendingPathComponent(named)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return list(in: url).last
    }

    /// The checkpoint file name a `latest` file holds (one line, a plain name: no folders).
    static func latestName(in latest: URL) throws -> String {
        // `latest` is one short line; anything large is not one (and is not read whole).
        let attributes = try? FileManager.default.attributesOfItem(atPath: latest.path)
        guard let size = attributes?[.size] as? Int, size <= 4096,
              let text = try? String(contentsOf: latest, encoding: .utf8) else {
            throw Failure(path: latest.path, message: "not a readable 'latest' file (one line naming a checkpoint)")
        }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, !name.contains("/"), !name.contains("\n") else {
            throw Failure(path: latest.path, message: "does not hold one checkpoint file name")
        }
        return name
    }

    /// `resolve` for a checkpoint that must exist (eval, predict): rank 0 resolves (ranks need not
    /// share a file system) and every rank gets the same path or the same error.
    public static func resolveExisting(_ path: String, communicator: Communicator) throws -> URL {
        var resolved = "", failedPath = "", failure = ""
        if communicator.rank == 0 {
            do {
                if let url = try resolve(path) { resolved = url.relativePath } else {
                    failedPath = path
                    failure = "no checkpoint in this run folder (no 'latest' and no *\(suffix) file)"
                }
            } catch let error as Failure {
                failedPath = error.path; failure = error.message
            } catch {
                failedPath = path; failure = "\(error)"
            }
        }
        failure = try communicator.broadcast(failure)
        failedPath = try communicator.broadcast(failedPath)
        if !failure.isEmpty { throw Failure(path: failedPath, message: failure) }
        return URL(fileURLWithPath: try communicator.broadcast(resolved))
    }
}

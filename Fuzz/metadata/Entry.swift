import Foundation
import Checkpoints
import Training

/// libFuzzer target `metadata` (Scripts/fuzz metadata): the checkpoint metadata reader that eval,
/// predict and train --resume run on a checkpoint's `__metadata__` before building the model.
/// The input is that JSON object of strings (seeded from a real checkpoint's). A separate binary:
/// it links the whole Training module, built instrumented by SwiftPM (minutes), so it stays out of
/// the CI smoke.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(bytes: bytes, count: size)
    guard let metadata = (try? JSONSerialization.jsonObject(with: data)) as? [String: String] else { return 0 }
    do {
        _ = try TrainingCheckpoint.contents(of: SafeTensors(metadata: metadata), path: "fuzz.safetensors.zst")
    } catch let error as CheckpointFile.Failure {
        // Must name the file. (It may quote metadata holding line breaks: the command line prints
        // every error as one line, runReportingErrors flattens them.)
        if !error.description.hasPrefix("fuzz.safetensors.zst: ") { fatalError("bad error message: \(error)") }
    } catch {
        fatalError("unexpected error type: \(error)")
    }
    return 0
}

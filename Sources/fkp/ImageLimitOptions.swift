import ArgumentParser
import FaceData

/// `--max-pixels`, shared by every command that decodes dataset images (the default lives in
/// `ImageCodec.defaultMaxPixels`).
struct ImageLimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Refuse images whose header claims more pixels than this (checked before decoding: "
                               + "a guard against decompression bombs).", valueName: "n"))
    var maxPixels: Int = ImageCodec.defaultMaxPixels

    func validate() throws {
        guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive") }
    }
}

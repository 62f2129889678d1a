import Foundation

/// libFuzzer's entry point. One binary holds every target (the instrumented build of the parser
/// sources is the slow part, so it is done once); FKP_FUZZ_TARGET picks the target.
let fuzzTarget: (Data) -> Void = {
    let name = ProcessInfo.processInfo.environment["FKP_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.all[name] else {
        FileHandle.standardError.write(Data("FKP_FUZZ_TARGET must be one of: \(FuzzTargets.all.keys.sorted().joined(separator: " "))\n".utf8))
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzTarget(Data(bytes: bytes, count: size))
    return 0
}

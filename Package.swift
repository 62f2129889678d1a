// swift-tools-version:6.0
// fkp — facial keypoint trainer: CNNs on the CPU (OpenBLAS), data-parallel over MPI.
import PackageDescription

// Swift 5 language mode: the engine shares raw buffers between worker threads by
// design (disjoint slices), which Swift 6's Sendable checking cannot express.
let lang: [SwiftSetting] = [.swiftLanguageMode(.v5)]
// Hot loops run over unsafe buffers; exclusivity checks cost up to 2x there.
let fast: [SwiftSetting] = lang + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "fkp",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "fkp", targets: ["fkp"]),
        .library(name: "SwiftMPI", targets: ["SwiftMPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        // Native libraries (Debian packages in Scripts/setup.sh), found through pkg-config.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),

        // One module per concern.
        .target(name: "SwiftMPI", dependencies: ["CMPI"], swiftSettings: lang),
        // The engine's vectorised C kernels (AVX-512 / AVX2 / generic, chosen at run time); optimised
        // in debug builds too, so tests run them at speed.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "Engine", dependencies: ["COpenBLAS", "CKernels"], swiftSettings: fast),
        .target(name: "Models", dependencies: ["Engine"], swiftSettings: fast),
        // dlib's face detector behind a C API (C++ target). dlib-1's pkg-config file lists absolute
        // library paths, which SwiftPM drops: link dlib and what it needs by name.
        .target(name: "CDlibDetector",
                linkerSettings: [.linkedLibrary("dlib"), .linkedLibrary("lapack"), .linkedLibrary("blas"), .linkedLibrary("m")]),
        .target(name: "FaceData", dependencies: ["CPNG", "CTurboJPEG", "CDlibDetector", "CKernels"], swiftSettings: fast),
        // The file formats: safetensors, zstd frames, checkpoint files and paths, state dicts
        // (PyTorch names). Knows the engine's parameter store, not the trainer.
        .target(name: "Checkpoints", dependencies: ["SwiftMPI", "Engine", "CZstd"], swiftSettings: fast),
        // TensorBoard event files: tfevents records of Event protos (generated code committed).
        .target(name: "TensorBoard", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: lang),
        // ONNX export of the models (onnx.proto's generated code committed).
        .target(name: "ONNXExport", dependencies: ["Engine", "Models", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: lang),
        .target(name: "Training", dependencies: [
            "SwiftMPI", "Engine", "Models", "FaceData", "Checkpoints", "TensorBoard",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: fast),
        .executableTarget(name: "fkp", dependencies: [
            "Training", "Checkpoints", "ONNXExport", "SwiftMPI", "Engine", "Models", "FaceData", "COpenBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: lang),
        // Runs every collective of the wrapper under mpirun and checks the results (used by the tests).
        .executableTarget(name: "swiftmpi-selftest", dependencies: ["SwiftMPI", "CMPI"], swiftSettings: lang),

        .target(name: "TestSupport", dependencies: ["Engine"], path: "Tests/TestSupport", swiftSettings: lang),
        .testTarget(name: "SwiftMPITests", dependencies: ["SwiftMPI", "CMPI", "TestSupport"], swiftSettings: lang),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "CKernels", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: lang),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Engine", "Training", "Checkpoints", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: lang),
        .testTarget(name: "FaceDataTests", dependencies: ["FaceData", "CKernels", "TestSupport"], swiftSettings: lang),
        .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                    swiftSettings: lang),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Checkpoints", "Models", "Engine", "FaceData", "TestSupport"], swiftSettings: lang),
    ],
    cxxLanguageStandard: .cxx17
)

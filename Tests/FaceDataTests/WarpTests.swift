import CKernels
import FaceData
import Foundation
import XCTest

/// The loader's warp (CKernels' fkp_warp_bilinear) against GreyImage.sample, the plain bilinear
/// lookup, pixel by pixel and bit for bit, on every instruction set this CPU runs; and a face
/// cached as bytes against the same face as Floats.
final class WarpTests: XCTestCase {
    override func tearDown() { _ = fkp_kernels_use("avx512") != 0 || fkp_kernels_use("avx2") != 0 }

    /// The versions this CPU can run.
    let versions = (["avx512", "avx2", "generic"] as [String]).filter { fkp_kernels_use($0) != 0 }

    /// Rotations, zooms from 0.6× to 2×, shifts that put parts of the crop outside the image, and a
    /// crop whose corner samples the image's first pixels (the byte path's edge case).
    func transforms(_ rng: inout SystemRandomNumberGenerator) -> [Affine2D] {
        var out: [Affine2D] = [.identity, .translation(-0.5, -0.25), .scale(1.7, 1.3)]
        for _ in 0 ..< 20 {
            let angle = Float.random(in: -0.8 ... 0.8, using: &rng), scale = Float.random(in: 0.6 ... 2, using: &rng)
            let shift = (Float.random(in: -30 ... 20, using: &rng), Float.random(in: -30 ... 20, using: &rng))
            out.append(Affine2D.rotation(radians: angle).followed(by: .scale(scale, scale))
                .followed(by: .translation(shift.0, shift.1)))
        }
        return out
    }

    func testEveryVersionSamplesLikeBilinearLookupBitForBit() throws {
        var rng = SystemRandomNumberGenerator()
        let image = GreyImage(width: 37, height: 29, pixels: (0 ..< 37 * 29).map { _ in Float.random(in: 0 ... 1, using: &rng) })
        XCTAssertFalse(versions.isEmpty)
        for transform in transforms(&rng) {
            let inv = transform.inverted()
            for clamp in [false, true] {
                var expected = [Float](repeating: 0, count: 45 * 23)
                for j in 0 ..< 23 {
                    let rowX = inv.b * Float(j) + inv.c, rowY = inv.e * Float(j) + inv.f
                    for i in 0 ..< 45 {
                        var x = rowX + inv.a * Float(i), y = rowY + inv.d * Float(i)
                        if clamp { x = min(max(x, 0), 36); y = min(max(y, 0), 28) }
                        expected[j * 45 + i] = image.sample(x, y, fill: 0.25)
                    }
                }
                for version in versions {
                    XCTAssertNotEqual(fkp_kernels_use(version), 0)
                    let out = image.warped(by: transform, width: 45, height: 23, fill: 0.25, clampToEdge: clamp).pixels
                    let wrong = (0 ..< out.count).filter { out[$0].bitPattern != expected[$0].bitPattern }
                    XCTAssertTrue(wrong.isEmpty, "\(version), clamp \(clamp), \(transform): \(wrong.count) pixels differ, first \(wrong.first ?? -1)")
                }
            }
        }
    }

    func testACachedFaceWarpsToTheCropOfItsFloats() {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0 ..< 41 * 33).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
        let record = FaceRecord(image: GreyImage(width: 41, height: 33, pixels: bytes.map { Float($0) * (1 / 255) }),
                                keypoints: [10, 12], box: nil, source: "test")
        let cached = CachedFace(width: 41, height: 33, bytes: bytes, keypoints: [10, 12], box: nil, source: "test")
        // Plus a zoom out by 3: both shrink the Floats first.
        for transform in transforms(&rng) + [.scale(0.3, 0.3)] {
            for version in versions {
                XCTAssertNotEqual(fkp_kernels_use(version), 0)
                var fromFloats = [Float](repeating: .nan, count: 40 * 30), fromBytes = fromFloats
                fromFloats.withUnsafeMutableBufferPointer { record.warpImage(by: transform, into: $0.baseAddress!, width: 40, height: 30, fill: 0) }
                fromBytes.withUnsafeMutableBufferPointer { cached.warpImage(by: transform, into: $0.baseAddress!, width: 40, height: 30, fill: 0) }
                XCTAssertEqual(fromBytes.map(\.bitPattern), fromFloats.map(\.bitPattern), "\(version), \(transform)")
            }
        }
    }
}

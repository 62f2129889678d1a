import Engine
import XCTest

/// The block arena behind `--recompute blocks` (Tensor.inBlockArena, CKernels' arena.c): a freed
/// range is handed out again, neighbours merge, and what outlives a block stays out of it.
final class BlockArenaTests: XCTestCase {
    let large = Tensor.largeBufferFloats

    func testFreedRangesAreReusedAndMerged() {
        Tensor.inBlockArena {
            let a = Tensor(shape: [large]), b = Tensor(shape: [2 * large]), c = Tensor(shape: [large])
            XCTAssertEqual(b.data, a.data + large, "first fit in 64 KiB units: b follows a")
            XCTAssertEqual(c.data, b.data + 2 * large)
            let bStart = b.data, aStart = a.data
            // b's range is the first that fits one large buffer.
            b.release()
            let d = Tensor(shape: [large])
            XCTAssertEqual(d.data, bStart)
            // Freed, d merges with the rest of b's range, and a with both: three large buffers.
            d.release(); a.release()
            let e = Tensor(shape: [3 * large])
            XCTAssertEqual(e.data, aStart, "the freed ranges of a, b and d did not merge")
            // All free again: the same sizes come back at the same addresses, as in every step.
            e.release(); c.release()
            let f = Tensor(shape: [4 * large])
            XCTAssertEqual(f.data, aStart)
        }
    }

    func testOnlyLargeBuffersInsideABlockUseTheArena() {
        let start = Tensor.inBlockArena { Tensor(shape: [large]).data }   // freed at once: the arena's first free range
        let outside = Tensor(shape: [large])
        let small = Tensor.inBlockArena { Tensor(shape: [large / 2]) }
        let kept = Tensor.inBlockArena { Tensor.outsideBlockArena { Tensor(shape: [large]) } }
        for t in [outside, small, kept] { XCTAssertNotEqual(t.data, start) }
        // A buffer from the malloc heap or a mapping of its own starts as zeros; the arena's is
        // whatever the last block left there.
        XCTAssert(outside.buffer.allSatisfy { $0 == 0 } && kept.buffer.allSatisfy { $0 == 0 })
        let reused = Tensor.inBlockArena { Tensor(shape: [large]) }
        XCTAssertEqual(reused.data, start)
    }

    /// Trimming gives the free pages back: they read as zeros when handed out again.
    func testTrimReturnsFreePages() {
        let first = Tensor.inBlockArena { Tensor(shape: [large]) }
        first.buffer.update(repeating: 7)
        let address = first.data
        first.release()
        Tensor.trimBlockArena()
        let again = Tensor.inBlockArena { Tensor(shape: [large]) }
        XCTAssertEqual(again.data, address)
        XCTAssert(again.buffer.allSatisfy { $0 == 0 })
    }
}

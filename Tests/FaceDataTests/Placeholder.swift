import XCTest
final class FaceDataTestsPlaceholder: XCTestCase { func testNothing() {} }

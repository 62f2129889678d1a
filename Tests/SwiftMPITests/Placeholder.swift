import XCTest
final class SwiftMPITestsPlaceholder: XCTestCase { func testNothing() {} }

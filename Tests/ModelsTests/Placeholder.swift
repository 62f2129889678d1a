import XCTest
final class ModelsTestsPlaceholder: XCTestCase { func testNothing() {} }

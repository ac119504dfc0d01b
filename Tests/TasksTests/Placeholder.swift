import XCTest
final class PlaceholderTasksTests: XCTestCase { func testNothing() {} }

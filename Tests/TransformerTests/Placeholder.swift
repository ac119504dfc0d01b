import XCTest
final class PlaceholderTransformerTests: XCTestCase { func testNothing() {} }

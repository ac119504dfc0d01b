import XCTest
final class PlaceholderCircuitsTests: XCTestCase { func testNothing() {} }

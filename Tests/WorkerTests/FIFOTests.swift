import XCTest

@testable import Worker

final class FIFOTests: XCTestCase {
    /// Elements come out in the order they went in, across the bulk drops
    /// of taken elements, with appends between takes; count and elements
    /// agree with a plain array doing the same.
    func testOrderAndCountMatchAnArrayAcrossCompactions() {
        var fifo = FIFO<Int>()
        var model: [Int] = []
        var next = 0
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            if Int.random(in: 0..<3, using: &generator) == 0 {
                let batch = Array(next..<(next + Int.random(in: 1...150, using: &generator)))
                next += batch.count
                fifo.append(contentsOf: batch)
                model.append(contentsOf: batch)
            } else {
                XCTAssertEqual(fifo.popFirst(), model.isEmpty ? nil : model.removeFirst())
            }
            XCTAssertEqual(fifo.count, model.count)
            XCTAssertEqual(fifo.isEmpty, model.isEmpty)
            XCTAssertEqual(Array(fifo.elements), model)
        }
        fifo.removeAll()
        XCTAssertTrue(fifo.isEmpty)
        XCTAssertNil(fifo.popFirst())
    }
}

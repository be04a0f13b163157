import FuzzChecks
import Foundation
import XCTest

/// Every fuzz target's committed corpus (fuzz/corpus/<target>/: seeds and
/// any crash a fuzz run found, kept as a regression) replayed through its
/// checks in-process. A failed invariant stops the test process, naming
/// the input.
final class CorpusReplayTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    func testEveryCorpusReplaysWithoutAFailedInvariant() throws {
        for target in FuzzTarget.allCases {
            let count = try target.replay([Self.corpus.appendingPathComponent(target.rawValue)])
            XCTAssertGreaterThanOrEqual(count, 10, "fuzz/corpus/\(target.rawValue) has only \(count) inputs")
        }
    }
}

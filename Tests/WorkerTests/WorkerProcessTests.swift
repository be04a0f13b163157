import Foundation
import KVMTestSupport
import XCTest

/// The test helper itself: a one-shot command that never ends fails its
/// test instead of hanging the suite.
final class WorkerProcessTests: XCTestCase {
    func testACommandStillRunningAtItsTimeoutIsKilledAndFails() throws {
        // A guest that spins is what keeps the command running.
        if let reason = KVMRequirement.unavailableReason() {
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        XCTAssertThrowsError(try WorkerProcess.command(
            ["run", RepositoryPaths.guest("demo").path, "spin", "{}", "--timeout-ms", "600000"], timeout: 2)
        ) { error in
            XCTAssertTrue("\(error)".contains("was still running after 2 s and was killed"), "\(error)")
        }
    }
}

import Foundation
import KVMTestSupport
import Sandbox
import XCTest

/// The README's list of failure kinds is exactly what the code can write
/// into hl.jobs.errors.
final class FailureKindDocsTests: XCTestCase {
    /// One of each SandboxError case. The switch has no default, so a new
    /// case does not compile until it is listed here too (and then the
    /// README check below asks for it in the docs).
    private static func sample(of error: SandboxError) -> SandboxError {
        switch error {
        case .timeout, .cancelled, .outOfMemory, .guestCrash, .guestError, .invalidOutput, .outputTooLarge,
             .unknownFunction, .memoryAccessViolation, .invalidInput, .tooManyHostCalls, .invalidGuest,
             .invalidLimits, .host, .finalError, .incompatibleGuest, .initFailed:
            return error
        }
    }

    static let sandboxKinds = [
        SandboxError.timeout(milliseconds: 1), .cancelled, .outOfMemory(""), .guestCrash(reason: "", rip: 0),
        .guestError(""), .invalidOutput(""), .outputTooLarge(bytes: 2, limit: 1), .unknownFunction(""),
        .memoryAccessViolation(address: 0, rip: 0), .invalidInput(""), .tooManyHostCalls(limit: 1),
        .invalidGuest(.notELF), .invalidLimits(""), .host(.missingCapability("")), .finalError(""),
        .incompatibleGuest(""), .initFailed(.guestError("")),
    ].map { sample(of: $0).kind }

    /// Written by the worker (JobRunner's rejections) and by the rescue SQL.
    static let workerKinds = ["unknown_guest", "invalid_job", "worker_lost", "dependency_failed"]

    func testTheREADMEListsEveryFailureKindAndNoOther() throws {
        let readme = try String(contentsOf: RepositoryPaths.root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try XCTUnwrap(readme.range(of: "**Failure kinds** in `errors`:"))
        let end = try XCTUnwrap(readme.range(of: "Failures a retry cannot fix", range: start.upperBound..<readme.endIndex))
        let paragraph = String(readme[start.upperBound..<end.lowerBound])
        let listed = Set(paragraph.matches(of: #/`([a-z_]+)`/#).map { String($0.1) })
        XCTAssertEqual(listed, Set(Self.sandboxKinds + Self.workerKinds))
    }
}

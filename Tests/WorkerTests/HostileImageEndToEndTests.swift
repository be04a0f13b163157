import Foundation
import KVMTestSupport
import XCTest

/// Guest images built to make the loader work (a 4 KiB file whose segment
/// claims 2^63 bytes, and friends: the hostile seeds of the ELF fuzz
/// corpus) fail fast with `invalid_guest` wherever they are met: `hl-worker
/// run`, `hl-worker guest add`, and a worker that finds one written straight
/// into hl.guests, which fails that guest's jobs and goes on with the rest.
/// A loader that walks what such a file claims never finishes, so commands
/// run under a generous deadline rather than a timing assertion.
final class HostileImageEndToEndTests: WorkerTestCase {
    static let hostile = ["hostile-memsz-2to63", "hostile-memsz-4GiB", "hostile-filesz-2to63", "hostile-offset-near-2to64",
                          "hostile-vaddr-near-2to64", "hostile-overlapping", "hostile-65-segments", "hostile-phnum-ffff"]

    static func path(_ seed: String) -> String {
        RepositoryPaths.root.appendingPathComponent("fuzz/corpus/elf/\(seed)").path
    }

    /// Runs an hl-worker subcommand; fails the test and kills it if it has
    /// not finished within `timeout` seconds.
    func command(_ arguments: [String], timeout: TimeInterval = 60,
                 file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String) {
        let process = Process()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("hl-hostile-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.executableURL = WorkerProcess.binary
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning {
            if Date() >= deadline {
                process.terminate()
                XCTFail("hl-worker \(arguments.joined(separator: " ")) still running after \(Int(timeout)) s", file: file, line: line)
                break
            }
            usleep(10_000)
        }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    func testRunRefusesHostileImages() throws {
        for seed in Self.hostile {
            let (status, output) = try command(["run", Self.path(seed), "fib", #"{"n": 1}"#])
            XCTAssertEqual(status, 1, "\(seed): \(output)")
            XCTAssertTrue(output.hasPrefix("invalid_guest: invalid guest image: ELF"), "\(seed): \(output)")
        }
    }

    func testGuestAddRefusesHostileImagesAndStoresNothing() throws {
        for seed in Self.hostile {
            let (status, output) = try command(["guest", "add", "--database-url", database.url, "evil", Self.path(seed)])
            XCTAssertEqual(status, 1, "\(seed): \(output)")
            XCTAssertTrue(output.hasPrefix("invalid_guest: invalid guest image: ELF"), "\(seed): \(output)")
        }
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.guests WHERE name = 'evil'").singleRow().int("n"), 0)
    }

    func testAHostileImageWrittenStraightIntoTheRegistryFailsOnlyItsJobs() throws {
        for (index, seed) in ["hostile-memsz-2to63", "hostile-65-segments", "hostile-memsz-4GiB"].enumerated() {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.path(seed)))
            try sql("INSERT INTO hl.guests (name, image) VALUES ($1, decode($2, 'hex'))",
                    ["evil\(index)", bytes.map { String(format: "%02x", $0) }.joined()])
        }
        let hostile = try (0..<3).flatMap { index in
            try [insertJob("fib", args: #"{"n": 10}"#, guest: "evil\(index)"), insertJob("echo", guest: "evil\(index)", vm: "recycled")]
        }
        let fine = try insertJob("add", args: #"{"a": 1, "b": 2}"#)
        let worker = try startWorker()
        try waitUntilAllFinal()

        for id in hostile {
            try assertDiscarded(id, kind: "invalid_guest", by: worker)
            XCTAssertTrue((try job(id).errors.first?["message"] as? String ?? "").contains("invalid guest image: ELF"), "job \(id)")
        }
        try assertCompleted(fine, result: #"{"sum": 3}"#)
        let afterwards = try insertJob("add", args: #"{"a": 40, "b": 2}"#)
        try waitUntilFinal(afterwards)
        try assertCompleted(afterwards, result: #"{"sum": 42}"#)
        worker.terminate()
    }
}

import Foundation
import XCTest

/// Recycled micro-VMs through the whole worker: a job in a recycled VM sees
/// the guest exactly as a fresh VM would, whatever ran in that VM before.
final class RecycledVMEndToEndTests: WorkerTestCase {
    /// `counter` counts calls in a global: any count but 1 is state left
    /// over from an earlier job.
    func testEveryRecycledJobStartsFromThePristineGuest() throws {
        let worker = try startWorker(concurrency: 4)
        try sql("""
            INSERT INTO hl.jobs (guest, function, vm)
            SELECT 'demo', 'counter', 'recycled' FROM generate_series(1, 200)
            """)
        try waitUntilAllFinal(timeout: 120)

        let summary = try sql("""
            SELECT count(*) AS jobs,
                   count(*) FILTER (WHERE state = 'completed' AND result = '{"count": 1}') AS pristine
            FROM hl.jobs
            """).singleRow()
        XCTAssertEqual(try summary.int("jobs"), 200)
        XCTAssertEqual(try summary.int("pristine"), 200, "recycled jobs that saw an earlier job's state")
        worker.terminate()
    }

    /// One slot, so that each job runs after the one before it, in whatever
    /// VM the pool hands out after a scribble, a crash, a timeout, an
    /// out-of-memory and a cancellation.
    func testRecycledJobsAfterMisbehavingOnesGiveCorrectAnswers() throws {
        let worker = try startWorker(concurrency: 1, ["--vm", "recycled"])
        func counterIsPristine(after what: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let counter = try insertJob("counter")
            try waitUntilFinal(counter, file: file, line: line)
            let row = try job(counter)
            XCTAssertEqual(row.state, "completed", "counter after \(what): \(row)", file: file, line: line)
            XCTAssertEqual(row.resultJSON, #"{"count": 1}"#, "counter after \(what)", file: file, line: line)
        }

        try counterIsPristine(after: "nothing")
        let scribble = try insertJob("scribble")
        try waitUntilFinal(scribble)
        try assertCompleted(scribble, result: "{}")
        try counterIsPristine(after: "scribble")

        for (function, args, kind) in [("crash", "{}", "guest_crash"), ("spin", "{}", "timeout"),
                                       ("alloc", #"{"mb": 64}"#, "out_of_memory")] {
            let bad = try insertJob(function, args: args, maxAttempts: 1, timeoutMs: 200)
            try waitUntilFinal(bad)
            try assertDiscarded(bad, kind: kind, by: worker)
            try counterIsPristine(after: function)
        }

        let cancelled = try insertJob("spin", timeoutMs: 120_000)
        try waitUntilRunning([cancelled], by: worker)
        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(cancelled)])
        try waitUntilFinal(cancelled, timeout: 10)
        XCTAssertEqual(try job(cancelled).state, "cancelled")
        try counterIsPristine(after: "cancel")

        // Functions beyond the counter work too, and so does the heap the
        // out-of-memory job exhausted.
        let add = try insertJob("add", args: #"{"a": 7, "b": 35}"#)
        let hash = try insertJob("sha256", args: #"{"text": "abc"}"#)
        let alloc = try insertJob("alloc", args: #"{"mb": 8}"#)
        try waitUntilAllFinal()
        try assertCompleted(add, result: #"{"sum": 42}"#)
        try assertCompleted(hash, result: #"{"hex": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#)
        try assertCompleted(alloc, result: #"{"mb": 8}"#)
        worker.terminate()
    }

    /// One slot and recycled VMs: a job that plants hostile CPU state
    /// (truncating rounding, flush to zero, unmasked SSE exceptions, vector
    /// registers, data selectors) before it ends, however it ends, must not
    /// change what the next job computes or sees.
    func testHostileCPUStateDoesNotReachTheNextJob() throws {
        try addGuest("isolation")
        let worker = try startWorker(concurrency: 1, ["--vm", "recycled"])
        let freshDigest = try insertJob("state_digest", guest: "isolation", vm: "fresh")
        try waitUntilFinal(freshDigest)
        // The digest's classes; the raw XSTATE_BV beside them is the CPU's
        // own bookkeeping, which host interrupts change.
        func classes(_ id: Int64) throws -> String? {
            try sql("SELECT (result->'classes')::text AS classes FROM hl.jobs WHERE id = $1", [String(id)])
                .singleRow().string("classes")
        }
        let reference = try XCTUnwrap(try classes(freshDigest))
        let float = #"{"third": "0x3fd5555555555555", "half_tiny": "0x0008000000000000"}"#
        for hostile in ["plant", "poison_mxcsr", "plant_crash", "plant_error", "plant_fault"] {
            try waitUntilFinal(try insertJob(hostile, guest: "isolation", maxAttempts: 1))
            let probe = try insertJob("float_probe", guest: "isolation")
            let digest = try insertJob("state_digest", guest: "isolation")
            try waitUntilAllFinal()
            try assertCompleted(probe, result: float)
            XCTAssertEqual(try classes(digest), reference, "the CPU state a job sees after \(hostile)")
        }
        worker.terminate()
    }

    /// `guest add` replaces the image under a name; the running worker runs
    /// the next job with the new one, in recycled and fresh VMs alike.
    func testNewGuestVersionIsPickedUpWithoutRestart() throws {
        let worker = try startWorker(concurrency: 2)
        func run(_ function: String, args: String = "{}") throws -> (recycled: Int64, fresh: Int64) {
            let recycled = try insertJob(function, args: args, vm: "recycled")
            let fresh = try insertJob(function, args: args, vm: "fresh")
            try waitUntilAllFinal()
            return (recycled, fresh)
        }

        let before = try run("counter")
        try assertCompleted(before.recycled, result: #"{"count": 1}"#)
        try assertCompleted(before.fresh, result: #"{"count": 1}"#)

        // The C guest has add but no counter.
        try addGuest("demo", elf: "hello_c")
        let missing = try run("counter")
        try assertDiscarded(missing.recycled, kind: "unknown_function", by: worker)
        try assertDiscarded(missing.fresh, kind: "unknown_function", by: worker)
        let sum = try run("add", args: #"{"a": 2, "b": 2}"#)
        try assertCompleted(sum.recycled, result: #"{"sum": 4}"#)
        try assertCompleted(sum.fresh, result: #"{"sum": 4}"#)

        try addGuest("demo")
        let back = try run("counter")
        try assertCompleted(back.recycled, result: #"{"count": 1}"#)
        try assertCompleted(back.fresh, result: #"{"count": 1}"#)
        XCTAssertTrue(worker.isRunning)
        worker.terminate()
    }
}

import CLibFuzzer
import Foundation
import Synchronization

/// The parsers a guest controls, one fuzz target each. A target's check
/// runs one input and stops the process (fatalError, which libFuzzer
/// records as a crash with its input) when an invariant fails.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The ELF loader: ELFImage, GuestImage, GuestLayout, page mappings, loading.
    case elf
    /// The result header a guest leaves in the output area, and the JSON
    /// validation its result then goes through.
    case result
    /// The host-call request header and payload decoding.
    case hostcall

    public func check(_ bytes: [UInt8]) {
        switch self {
        case .elf: ELFCheck.check(bytes)
        case .result: ResultCheck.check(bytes)
        case .hostcall: HostCallCheck.check(bytes)
        }
    }

    /// The executable's main. Built with `-DFUZZING -sanitize=fuzzer`, it hands
    /// control (and the command line) to libFuzzer with `callback`, which
    /// must be the target's `LLVMFuzzerTestOneInput`. Otherwise it replays
    /// the files and folders on the command line (a corpus, or a crash
    /// libFuzzer wrote) through `check`, so a plain build can reproduce a
    /// crash without libFuzzer.
    public func main(callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
        #else
        let paths = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
        guard !paths.isEmpty else {
            FileHandle.standardError.write(Data("usage: fuzz-\(rawValue) FILE_OR_FOLDER...\n".utf8))
            exit(2)
        }
        do {
            let count = try replay(paths.map { URL(fileURLWithPath: $0) })
            print("fuzz-\(rawValue): \(count) inputs replayed, no invariant failed")
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("fuzz-\(rawValue): \(error)\n".utf8))
            exit(1)
        }
        #endif
    }

    /// Runs `check` on every file named, and every file in every folder
    /// named (not recursively, in name order); returns how many it ran.
    @discardableResult
    public func replay(_ urls: [URL]) throws -> Int {
        var count = 0
        for url in urls {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
            }
            let files = isFolder.boolValue
                ? try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil).sorted { $0.path < $1.path }
                : [url]
            for file in files {
                let bytes = Array(try Data(contentsOf: file))
                replaying.withLock { $0 = file.path }
                check(bytes)
                count += 1
            }
            replaying.withLock { $0 = nil }
        }
        return count
    }

    /// Runs `check` on the input libFuzzer hands a target's callback.
    public func run(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        check(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }
}

/// The file a replay is checking, so that a failed invariant names it
/// (libFuzzer names its own inputs).
let replaying = Mutex<String?>(nil)

/// Stops the process, naming the invariant (and the file replayed), when
/// `condition` is false.
func expect(_ condition: Bool, _ invariant: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    guard !condition else { return }
    let input = replaying.withLock { $0 }.map { " (input \($0))" } ?? ""
    fatalError("invariant failed: \(invariant())\(input)", file: file, line: line)
}

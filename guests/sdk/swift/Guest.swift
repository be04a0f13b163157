import HLRuntime

/// A failure the guest reports on purpose. The host records it as a
/// guest_error carrying `message` (retried like other failures), or, made
/// with `GuestError.final`, as a guest_final_error: the job is discarded
/// without retries, for failures a retry cannot fix.
public struct GuestError: Error {
    public var message: String
    public var isFinal: Bool

    public init(_ message: String) {
        self.message = message
        isFinal = false
    }

    /// A failure no retry can fix (bad arguments, a request that can never
    /// succeed): the job is discarded at once.
    public static func final(_ message: String) -> GuestError {
        var error = GuestError(message)
        error.isFinal = true
        return error
    }

    func report() {
        var message = message
        let status = isFinal ? HL_STATUS_FINAL_ERROR : HL_STATUS_GUEST_ERROR
        message.withUTF8 { hl_set_result(status.rawValue, $0.baseAddress, $0.count) }
    }
}

/// A guest's init: runs once when its VM is built, before any call and
/// before a recycled VM's snapshot. Declare it as the C symbol the runtime
/// looks for:
///
///     @_cdecl("hl_init")
///     func initialize() { GuestInit.run { () throws(GuestError) in table = buildTable() } }
///
/// A thrown error fails the VM's build; no job runs on it.
public enum GuestInit {
    public static func run(_ body: () throws(GuestError) -> Void) {
        do {
            try body()
        } catch {
            error.report()
        }
    }
}

/// One named entry of a guest's function table.
///
/// Embedded Swift has no untyped `throws`, so closures given here must spell
/// `throws(GuestError)`; named functions are the easier way.
public struct GuestFunction {
    let name: StaticString
    let body: ([UInt8]) throws(GuestError) -> [UInt8]

    /// A function over raw bytes: the call's input in, the result out.
    public static func bytes(
        _ name: StaticString, _ body: @escaping ([UInt8]) throws(GuestError) -> [UInt8]
    ) -> GuestFunction {
        GuestFunction(name: name, body: body)
    }

    /// The same for a function that cannot fail. Its own overload, so that
    /// the function is called through its own type: in Wasm a non-throwing
    /// function called as a throwing one has the wrong signature and traps.
    public static func bytes(_ name: StaticString, _ body: @escaping ([UInt8]) -> [UInt8]) -> GuestFunction {
        GuestFunction(name: name) { (input: [UInt8]) throws(GuestError) -> [UInt8] in body(input) }
    }

    /// A function whose arguments are a JSON object and whose result is JSON.
    /// Empty input counts as `{}`; input that is not a JSON object becomes a
    /// guest error before `body` runs.
    public static func json(
        _ name: StaticString, _ body: @escaping (JSON) throws(GuestError) -> JSON
    ) -> GuestFunction {
        GuestFunction(name: name) { (input: [UInt8]) throws(GuestError) -> [UInt8] in
            try body(JSON.parseArguments(input)).encoded()
        }
    }
}

/// A guest program: mark the conforming type `@main` and list its functions.
///
///     @main
///     struct Demo: Guest {
///         static let functions: [GuestFunction] = [.json("add", add)]
///     }
public protocol Guest {
    static var functions: [GuestFunction] { get }
}

extension Guest {
    /// Runs once per call: the runtime calls `main` each time the host
    /// enters the guest.
    public static func main() {
        if hl_call_is_listing() != 0 {
            for function in functions {
                function.name.withUTF8Buffer { name in
                    name.withMemoryRebound(to: CChar.self) { hl_list_function($0.baseAddress, $0.count) }
                }
            }
            return
        }
        var nameLength = 0
        guard let name = hl_call_name(&nameLength) else { return }
        let requested = UnsafeBufferPointer(start: name, count: nameLength)
        for function in functions {
            let matches = function.name.withUTF8Buffer { $0.elementsEqual(requested) }
            if matches {
                run(function)
                return
            }
        }
        hl_report_unknown_function()
    }

    private static func run(_ function: GuestFunction) {
        var inputLength = 0
        let input: [UInt8]
        if let start = hl_call_input(&inputLength), inputLength > 0 {
            input = Array(UnsafeBufferPointer(start: start, count: inputLength))
        } else {
            input = []
        }
        do {
            let output = try function.body(input)
            output.withUnsafeBytes {
                hl_set_result(HL_STATUS_OK.rawValue, $0.baseAddress, $0.count)
            }
        } catch {
            error.report()
        }
    }
}

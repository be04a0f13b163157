import HLRuntime

/// An Embedded Swift guest with an init: the greeting is built once per VM,
/// before any call (and before a recycled VM's snapshot).
@main
struct InitSwift: Guest {
    static let functions: [GuestFunction] = [.json("greet", greet)]
}

var greeting = ""
var inits: Int64 = 0

@_cdecl("hl_init")
func initialize() {
    GuestInit.run { () throws(GuestError) in
        greeting = "hello from " + "init"
        inits += 1
        guard !greeting.isEmpty else { throw GuestError.final("no greeting") }
    }
}

func greet(_ args: JSON) throws(GuestError) -> JSON {
    ["greeting": .string(greeting), "inits": .int(inits)]
}

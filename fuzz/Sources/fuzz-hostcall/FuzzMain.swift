import FuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.hostcall.run(data, size)
}

@main
enum FuzzMain {
    static func main() {
        FuzzTarget.hostcall.main(callback: fuzzOne)
    }
}

import FuzzChecks

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.result.run(data, size)
}

@main
enum FuzzMain {
    static func main() {
        FuzzTarget.result.main(callback: fuzzOne)
    }
}

/// Host functions the sandbox does not answer itself (it answers log and
/// wall clock): whoever runs a call may pass a handler for the rest. The
/// sandbox stays ignorant of what they mean; it hands over the function
/// number and the payload (already bounds-checked against the host-call
/// area) and writes back the answer.
///
/// `handle` runs on the thread driving the call, while the vCPU is stopped
/// at the guest's `out`; the call's timeout keeps running meanwhile.
public protocol HostCallHandler: AnyObject {
    func handle(function: UInt32, payload: [UInt8]) -> HostCallAnswer
}

public enum HostCallAnswer: Equatable, Sendable {
    /// HL_HOSTCALL_OK with this reply payload.
    case ok([UInt8])
    /// HL_HOSTCALL_REFUSED with this reason (cut to fit the area).
    case refused(String)
    /// HL_HOSTCALL_UNKNOWN: the handler does not know the function either.
    case unknown
}

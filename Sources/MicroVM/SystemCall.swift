import Glibc

/// Errors from the KVM layer. Each case names the operation that failed and
/// carries errno, so the log says what to check.
public enum KVMError: Error, CustomStringConvertible, Equatable {
    case openDevice(path: String, errno: Int32)
    case unsupportedAPIVersion(Int32)
    case missingCapability(String)
    case systemCall(operation: String, errno: Int32)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .openDevice(let path, let errno):
            let hint = errno == EACCES
                ? " (run as a user in the group that owns \(path), usually `kvm`)"
                : errno == ENOENT ? " (KVM is not available on this host)" : ""
            return "cannot open \(path): \(String(cString: strerror(errno)))\(hint)"
        case .unsupportedAPIVersion(let version):
            return "KVM API version \(version) is not the stable version 12"
        case .missingCapability(let name):
            return "KVM lacks the capability \(name)"
        case .systemCall(let operation, let errno):
            return "\(operation) failed: \(String(cString: strerror(errno)))"
        case .invalidArgument(let message):
            return message
        }
    }
}

/// The one door for system calls in MicroVM: retries EINTR, turns a failure
/// into a typed error naming the operation. EBADF and EFAULT mean this code
/// passed a bad descriptor or pointer, a bug rather than a runtime condition.
@discardableResult
func systemCall(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws -> Int32 {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(operation()): programmer error, errno \(code)")
        throw KVMError.systemCall(operation: operation(), errno: code)
    }
}

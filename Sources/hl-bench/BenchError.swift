import Glibc

/// Why the benchmark could not produce a figure.
enum BenchError: Error, CustomStringConvertible {
    case system(String, Int32)
    case unexpected(String)
    case setup(String)

    var description: String {
        switch self {
        case .system(let operation, let code): return "\(operation) failed: \(String(cString: strerror(code)))"
        case .unexpected(let message): return message
        case .setup(let message): return message
        }
    }
}

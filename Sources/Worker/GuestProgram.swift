import Sandbox

/// The Sandbox module's loaded guest. JobQueue has a type of the same name
/// (a registry row), so Worker, which sees both, names this one here.
typealias GuestProgram = GuestImage

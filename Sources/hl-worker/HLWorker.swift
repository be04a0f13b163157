import ArgumentParser

@main
struct HLWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl-worker",
        abstract: "Runs jobs from PostgreSQL inside KVM micro-VMs.",
        subcommands: [RunCommand.self]
    )
}

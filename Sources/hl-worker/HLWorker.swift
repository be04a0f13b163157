import ArgumentParser

@main
struct HLWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl-worker",
        abstract: "Runs jobs from PostgreSQL inside KVM micro-VMs.",
        discussion: """
            With no subcommand, runs the worker service: `hl-worker --concurrency 8`.
            The database comes from --database-url, else DATABASE_URL, else libpq's PG* variables.
            """,
        subcommands: [ServeCommand.self, MigrateCommand.self, GuestCommand.self, EnqueueCommand.self,
                      StatusCommand.self, QueueCommand.self, RunCommand.self, ScheduleCommand.self,
                      DashboardCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

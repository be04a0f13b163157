import ArgumentParser
import Worker

@main
struct HLWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl-worker",
        abstract: "Runs jobs from PostgreSQL inside KVM micro-VMs.",
        discussion: """
            With no subcommand, runs the worker service: `hl-worker --concurrency 8`.
            The database comes from --database-url, else DATABASE_URL, else libpq's PG* variables.
            `hl-worker serve --help` lists the service's options and every fixed limit of a job.
            HL_MIGRATIONS_DIR: a folder of NNNN_name.sql files `migrate` applies instead of the built-in migrations.
            """,
        version: HLVersion.current,
        subcommands: [ServeCommand.self, MigrateCommand.self, GuestCommand.self, EnqueueCommand.self,
                      StatusCommand.self, QueueCommand.self, JobCommand.self, RunCommand.self, ScheduleCommand.self,
                      DashboardCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

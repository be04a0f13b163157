import Foundation
import PackagePlugin

/// Compiles migrations/*.sql into the JobQueue module as Swift source, so
/// the hl-worker binary carries its schema: a copied binary or a container
/// image can `migrate` with no checkout.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
            .map { directory.appending(path: $0) }
        let script = context.package.directoryURL.appending(path: "scripts/embed-migrations.sh")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        // The files are the command's inputs, so an edited migration is
        // embedded again; an added or removed one makes SwiftPM plan the
        // build again (JobQueue lists them as resources, through its
        // Migrations link), which calls this again. A shell script rather
        // than a Swift tool: a tool would be built with the destination's
        // flags, and a fuzzing build's sanitizer flags make an executable
        // that cannot link.
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) migrations",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, output.path, directory.path],
                inputFiles: files + [script],
                outputFiles: [output])
        ]
    }
}

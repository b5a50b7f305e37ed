// Foundation (for URL) is fine here: the plugin runs inside SwiftPM at build time and is
// linked into no binary.
import Foundation
import PackagePlugin

/// Embeds the systemd units of `units/` in the CLI at build time, so `agentron service
/// install` writes exactly the files packagers ship and there is one copy of their text
/// (docs/systemd.md). The generated `EmbeddedUnits` enum has one string per file; the
/// build reruns the tool whenever one of them changes.
@main
struct EmbedUnits: BuildToolPlugin {
    /// Swift name in `EmbeddedUnits` → file in `units/`.
    static let units = [
        ("systemService", "agentrond.service"),
        ("userService", "agentrond-user.service"),
        ("systemSocket", "agentrond.socket"),
        ("userSocket", "agentrond-user.socket"),
    ]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "units")
        let inputs = Self.units.map { directory.appending(path: $0.1) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedUnits.swift")
        let arguments =
            [output.path(percentEncoded: false), "EmbeddedUnits"]
            + zip(Self.units, inputs).map { unit, input in unit.0 + "=" + input.path(percentEncoded: false) }
        return [
            .buildCommand(
                displayName: "Embedding the unit files in \(target.name)",
                executable: try context.tool(named: "EmbedText").url,
                arguments: arguments,
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}

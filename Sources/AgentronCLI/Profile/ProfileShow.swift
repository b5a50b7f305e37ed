import AgentronCore
import ArgumentParser

struct ProfileShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a profile with every default filled in."
    )

    @Argument(help: "A profile name or file.", completion: Completion.profiles)
    var profile: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let resolved: Profile
        do {
            resolved = try CLIContext().catalog.resolve(profile)
        } catch {
            throw fail(error)
        }
        if json {
            Output.json(resolved)
        } else {
            Output.writeStdout(Array(("# \(resolved.source ?? profile)\n" + resolved.yamlText).utf8))
        }
    }
}

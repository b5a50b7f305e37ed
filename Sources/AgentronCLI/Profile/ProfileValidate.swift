import AgentronCore
import ArgumentParser

struct ProfileValidate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check profiles; exits non-zero when any is invalid.",
        discussion: "With no argument every profile on the search path is checked."
    )

    @Argument(help: "Profile names or files (default: all on the search path).", completion: Completion.profiles)
    var profiles: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    struct Result: Encodable {
        var profile: String
        var valid: Bool
        var error: String?
    }

    func run() async throws {
        let catalog = CLIContext().catalog
        var results: [Result] = []
        if profiles.isEmpty {
            for entry in catalog.entries() {
                results.append(Result(profile: entry.path, valid: entry.error == nil, error: entry.error?.description))
            }
        } else {
            for profile in profiles {
                do {
                    let resolved = try catalog.resolve(profile)
                    results.append(Result(profile: resolved.source ?? profile, valid: true, error: nil))
                } catch {
                    results.append(Result(profile: profile, valid: false, error: error.description))
                }
            }
        }
        if json {
            Output.json(results)
        } else {
            for result in results {
                if let error = result.error { Output.error(error) } else { print("ok  \(result.profile)") }
            }
        }
        if results.contains(where: { !$0.valid }) { throw ExitCode(1) }
    }
}

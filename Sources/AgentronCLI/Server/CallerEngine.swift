import AgentronConfig
import AgentronCore
import AgentronEngines
import AgentronProcess

/// The engine the caller would run (docs/configuration.md, "The caller's engine"): `up`
/// finds the engine's program on the caller's PATH, not the daemon's, so a vLLM installed
/// in the venv the user activated is the one that runs, whenever the daemon was started.
enum CallerEngine {
    /// What a Python environment's tools read to find it.
    static let environmentVariables = ["VIRTUAL_ENV", "CONDA_PREFIX"]

    /// `profile` with its program made absolute from the caller's PATH (a profile's own
    /// absolute `executable` or `command` wins), and the caller's VIRTUAL_ENV and
    /// CONDA_PREFIX added to the engine's environment unless the profile sets them. A
    /// program the caller's PATH does not have is left to the daemon's PATH, as before.
    static func apply(to profile: Profile, environment: [String: String]) -> Profile {
        let path = environment["PATH"]
        var out = profile
        switch profile.engine {
        case .tgi:
            return out  // a container: nothing of the caller's runs
        case .command:
            if var command = out.command, let first = command.first, !first.contains("/"),
                let found = Spawner.resolveExecutable(first, path: path)
            {
                command[0] = found
                out.command = command
            }
        case .vllm, .ollama:
            if out.executable == nil, let program = profile.engine.driver.installedProgram?.program,
                let found = Spawner.resolveExecutable(program, path: path)
            {
                out.executable = found
            }
        }
        for key in environmentVariables where out.env[key] == nil {
            if let value = environment[key], !value.isEmpty { out.env[key] = value }
        }
        return out
    }
}
